#!/usr/bin/env bash
# Set up a Jetson Nano (JetPack 4.6.x: Python 3.6, CUDA 10.2, TensorRT 8.0.1 or 8.2.1) from this checkout:
# the torch-free edge runtime, pycuda (built here: no wheels exist), and the GDN1 TensorRT plugin for sm_53.
# Needs gcc and the Python headers (JetPack has both; else: sudo apt-get install build-essential python3-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/cuda/bin:$PATH CPATH=/usr/local/cuda/include${CPATH:+:$CPATH}
export LIBRARY_PATH=/usr/local/cuda/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}

python3 -m pip install --user --upgrade "pip<22"   # JetPack's pip 9 cannot read manylinux2014 wheels
python3 -m pip install --user -r jetson/requirements.txt
python3 -m pip install --user --no-deps .          # builds the rANS core with gcc
python3 -m pip install --user "pycuda==2022.1"     # the last release for Python 3.6; compiles against CUDA 10.2

# The plugin, with JetPack's TensorRT headers and the device's nvcc (JetPack's CMake 3.10 is too old for
# engines/CMakeLists.txt, so the same build by hand).
mkdir -p engines/build
nvcc -std=c++14 -gencode arch=compute_53,code=sm_53 -Xcompiler -fPIC,-fvisibility=hidden \
    -c engines/gdn1_kernel.cu -o engines/build/gdn1_kernel.o
g++ -std=c++14 -O2 -fPIC -fvisibility=hidden -Wall -isystem /usr/include/aarch64-linux-gnu \
    -isystem /usr/local/cuda/include -c engines/gdn1_plugin_v2.cpp -o engines/build/gdn1_plugin_v2.o
g++ -shared -Wl,--no-undefined -o engines/build/libroi_trt_gdn1.so engines/build/gdn1_plugin_v2.o \
    engines/build/gdn1_kernel.o -lnvinfer -L/usr/local/cuda/lib64 -lcudart_static -lrt -ldl -lpthread

python3 -m roi_trt.cli --version
python3 -m roi_trt.cli doctor
