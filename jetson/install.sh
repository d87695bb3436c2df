#!/usr/bin/env bash
# Set up a Jetson from this checkout: the torch-free edge runtime and the GDN1 TensorRT plugin for its GPU.
#   JetPack 4.6.x (L4T R32: Nano; Python 3.6, CUDA 10.2, TensorRT 8.0.1/8.2.1): pinned Python 3.6 wheels,
#     pycuda built here (no wheels exist), the plugin's TensorRT 8 glue built by hand (JetPack's CMake 3.10
#     is too old for engines/CMakeLists.txt).
#   JetPack 5.1 / 6.x (L4T R35 / R36: Orin; Python 3.8 / 3.10, CUDA 11.4 / 12.x, TensorRT 8.5 / 8.6 / 10.3):
#     the runtime from PyPI, CUDA through the system's libcudart (no pycuda needed), TensorRT's Python
#     bindings from JetPack; the plugin by hand on R35 (CMake 3.16), with engines/CMakeLists.txt on R36,
#     which picks the glue for the TensorRT found.
# Needs gcc and the Python headers (JetPack has both; else: sudo apt-get install build-essential python3-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/cuda/bin:$PATH CPATH=/usr/local/cuda/include${CPATH:+:$CPATH}
export LIBRARY_PATH=/usr/local/cuda/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}
TRT_INCLUDE=/usr/include/aarch64-linux-gnu
l4t=$(sed -n 's/^# R\([0-9]*\) .*/\1/p' /etc/nv_tegra_release 2>/dev/null || true)
echo "L4T release: R${l4t:-unknown}"

if [ "${l4t:-32}" = 32 ]; then
    python3 -m pip install --user --upgrade "pip<22"   # JetPack's pip 9 cannot read manylinux2014 wheels
    python3 -m pip install --user -r jetson/requirements.txt
    python3 -m pip install --user --no-deps .          # builds the rANS core with gcc
    python3 -m pip install --user "pycuda==2022.1"     # the last release for Python 3.6; compiles against CUDA 10.2
else
    python3 -m pip install --user "numpy<2" onnxruntime onnx .   # JetPack's OpenCV and TensorRT bindings want numpy 1
fi

# The GPU's compute capability, from roi-trt's own CUDA detection (the system's libcudart): what nvcc builds for.
arch=$(python3 -c "from roi_trt import cuda; d = cuda.detect().devices; print('%d%d' % d[0].compute_capability)")
mkdir -p engines/build
if [ "${l4t:-32}" -ge 36 ] && command -v cmake > /dev/null; then
    cmake -S engines -B engines/build -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
        -DTENSORRT_INCLUDE_DIR=$TRT_INCLUDE -DCMAKE_CUDA_ARCHITECTURES="$arch"
    cmake --build engines/build
else  # TensorRT 8: the V2 glue, as CMake would build it
    nvcc -std=c++14 -gencode arch=compute_$arch,code=sm_$arch -Xcompiler -fPIC,-fvisibility=hidden \
        -c engines/gdn1_kernel.cu -o engines/build/gdn1_kernel.o
    g++ -std=c++14 -O2 -fPIC -fvisibility=hidden -Wall -isystem $TRT_INCLUDE \
        -isystem /usr/local/cuda/include -c engines/gdn1_plugin_v2.cpp -o engines/build/gdn1_plugin_v2.o
    g++ -shared -Wl,--no-undefined -o engines/build/libroi_trt_gdn1.so engines/build/gdn1_plugin_v2.o \
        engines/build/gdn1_kernel.o -lnvinfer -L/usr/local/cuda/lib64 -lcudart_static -lrt -ldl -lpthread
fi

python3 -m roi_trt.cli --version
python3 -m roi_trt.cli doctor
