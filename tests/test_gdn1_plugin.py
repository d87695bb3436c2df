"""The GDN1 TensorRT plugin (engines/) and its loader, each check where its tools exist.

Host arithmetic against float64 and CompressAI; the kernel's source emulated on CPU threads, compiled by
CUDA 13's nvcc (sm_75+) and by NVRTC + ptxas 11.8 (the Nano's sm_53), and run on a GPU; the TensorRT glue
against NVIDIA's headers (TENSORRT_INCLUDE_DIR); registration with a real TensorRT 8.6 library
(ROI_TRT_TEST_TRT86).
"""

import ctypes
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from roi_trt.backends.tensorrt import plugin as loader
from roi_trt.errors import PluginError
from roi_trt.optional import MissingDependency
from roi_trt.spec import GDN1_INVERSE, GDN1_OP, GDN1_PLUGIN_NAMESPACE, GDN1_PLUGIN_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = os.path.join(ROOT, "engines")
KERNEL = os.path.join(ENGINES, "gdn1_kernel.cu")
CHANNELS = [16, 128, 256]
# ptxas -v on a kernel whose register tile stayed in registers
NO_LOCAL_MEMORY = "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert proc.returncode == 0, "{}\n{}".format(" ".join(str(c) for c in cmd), proc.stdout[-6000:])
    return proc.stdout


def tool(name, why):
    path = shutil.which(name)
    if path is None:
        pytest.skip("{} not on PATH ({})".format(name, why))
    return path


def random_layer(channels, seed, batch=2, height=5, width=7):
    """x and effective parameters like a trained layer's: small non-negative, non-symmetric gamma."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((batch, channels, height, width)) * 2).astype(np.float32)
    gamma = (rng.random((channels, channels)) * (0.2 / channels) + np.eye(channels) * 0.1).astype(np.float32)
    beta = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    return x, gamma, beta


def gdn1_float64(x, gamma, beta, inverse):
    norm = beta.astype(np.float64)[None, :, None, None] + np.einsum("ij,njhw->nihw", gamma.astype(np.float64),
                                                                    np.abs(x.astype(np.float64)))
    return x * norm if inverse else x / norm


def gxx_shared_library(tmp_path, name, source, *flags):
    gxx = tool("g++", "a C++ compiler builds the host pieces")
    src, lib = tmp_path / (name + ".cpp"), tmp_path / ("lib" + name + ".so")
    src.write_text(source)
    # ISO C++ mode: no FMA contraction beyond the explicit fmaf calls
    run([gxx, "-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I", ENGINES, src, "-o", lib]
        + list(flags))
    return str(lib)


@pytest.fixture(scope="module")
def host_gdn1(tmp_path_factory):
    """gdn1_reference from engines/gdn1_math.h, compiled for the host and called through ctypes."""
    lib = ctypes.CDLL(gxx_shared_library(tmp_path_factory.mktemp("host"), "gdn1_host", (
        '#include "gdn1_math.h"\n'
        'extern "C" void reference(const float* x, const float* gamma, const float* beta, float* y,\n'
        '                          int batch, int channels, int hw, int inverse)\n'
        '{ gdn1_reference(x, gamma, beta, y, batch, channels, hw, inverse); }\n')))
    lib.reference.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 4
    lib.reference.restype = None

    def gdn1(x, gamma, beta, inverse):
        x, gamma, beta = (np.ascontiguousarray(a, np.float32) for a in (x, gamma, beta))
        y = np.empty_like(x)
        n, c, h, w = x.shape
        lib.reference(x.ctypes.data, gamma.ctypes.data, beta.ctypes.data, y.ctypes.data, n, c, h * w, inverse)
        return y

    return gdn1


@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("channels", CHANNELS)
def test_host_reference_matches_float64(host_gdn1, channels, inverse):
    x, gamma, beta = random_layer(channels, seed=channels + inverse)
    np.testing.assert_allclose(host_gdn1(x, gamma, beta, inverse), gdn1_float64(x, gamma, beta, inverse),
                               rtol=1e-5, atol=0)


@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("channels", CHANNELS)
def test_host_reference_matches_compressai(host_gdn1, channels, inverse):
    torch = pytest.importorskip("torch")
    layers = pytest.importorskip("compressai.layers")
    x, gamma, beta = random_layer(channels, seed=10 * channels + inverse)
    gdn = layers.GDN1(channels, inverse=bool(inverse))
    with torch.no_grad():
        gdn.gamma.copy_(gdn.gamma_reparam.init(torch.from_numpy(gamma)))
        gdn.beta.copy_(gdn.beta_reparam.init(torch.from_numpy(beta)))
        # the effective values, as the ONNX export writes them
        gamma, beta = gdn.gamma_reparam(gdn.gamma).numpy(), gdn.beta_reparam(gdn.beta).numpy()
        expected = gdn(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(host_gdn1(x, gamma, beta, inverse), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90"])
def test_kernel_compiles_with_nvcc(arch, tmp_path):
    nvcc = tool("nvcc", "needs a CUDA toolkit")
    cubin = tmp_path / "gdn1.cubin"
    out = run([nvcc, "-arch=" + arch, "-cubin", "-Xptxas", "-v", "-Werror", "all-warnings", KERNEL, "-o", cubin])
    assert cubin.stat().st_size > 0
    assert NO_LOCAL_MEMORY in out


# CUDA's execution model on CPU threads, to check the kernel's tiling where no GPU is: one std::thread
# per CUDA thread, a barrier for __syncthreads, blocks one after another (so statics stand in for
# __shared__ arrays). The kernel source is compiled as NVRTC sees it: device code only.
EMULATOR = """
#include <math.h>
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

struct Index { unsigned x, y, z; };
thread_local Index threadIdx, blockIdx;
struct float4 { float x, y, z, w; };
using std::min;

class Barrier
{
public:
    explicit Barrier(int threads) : threads_(threads) {}
    void wait()
    {
        std::unique_lock<std::mutex> lock(mutex_);
        const int generation = generation_;
        if (++arrived_ == threads_) { arrived_ = 0; ++generation_; released_.notify_all(); }
        else released_.wait(lock, [&] { return generation != generation_; });
    }
private:
    std::mutex mutex_;
    std::condition_variable released_;
    int threads_, arrived_ = 0, generation_ = 0;
};
Barrier* block_barrier;

#define __global__
#define __shared__ static
#define __launch_bounds__(n)
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() block_barrier->wait()
#define __CUDACC_RTC__
#include "gdn1_kernel.cu"

extern "C" void emulate(const float* x, const float* gamma, const float* beta, float* y, int batch, int channels,
                        int hw, int inverse)
{
    const int tiles = (hw + roi_trt::kBlockPixels - 1) / roi_trt::kBlockPixels;
    for (int block = 0; block < batch * tiles; ++block)
    {
        Barrier barrier(roi_trt::kThreads);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (int t = 0; t < roi_trt::kThreads; ++t)
            threads.emplace_back([=] {
                blockIdx = {unsigned(block), 0, 0};
                threadIdx = {unsigned(t), 0, 0};
                roi_trt::gdn1_kernel(x, gamma, beta, y, channels, hw, tiles, inverse);
            });
        for (auto& thread : threads)
            thread.join();
    }
}
"""

# tile edges: pixels not a multiple of 128, channels not a multiple of 32 or 64, a single pixel
KERNEL_SHAPES = [(2, 16, 5, 7), (1, 100, 33, 9), (3, 128, 16, 16), (1, 256, 8, 24), (2, 65, 1, 1)]


def test_kernel_source_matches_host_reference_in_cpu_emulation(host_gdn1, tmp_path):
    emulator = ctypes.CDLL(gxx_shared_library(tmp_path, "gdn1_emulator", EMULATOR, "-pthread"))
    emulator.emulate.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 4
    for batch, channels, height, width in KERNEL_SHAPES:
        for inverse in (0, 1):
            x, gamma, beta = random_layer(channels, seed=channels + inverse, batch=batch, height=height, width=width)
            y = np.full_like(x, np.nan)
            emulator.emulate(x.ctypes.data, gamma.ctypes.data, beta.ctypes.data, y.ctypes.data, batch, channels,
                             height * width, inverse)
            # same order of fused multiply-adds and IEEE division on both sides: identical bits
            np.testing.assert_array_equal(y, host_gdn1(x, gamma, beta, inverse))


def cu11_wheel_file(package, pattern):
    spec = importlib.util.find_spec("nvidia." + package)
    found = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], pattern))) if spec else []
    if not found:
        pytest.skip("nvidia-cuda-nvrtc-cu11 and nvidia-cuda-nvcc-cu11 (11.8.89) not installed: they compile for sm_53")
    return found[0]


def nvrtc_ptx(libnvrtc, source, options):
    """PTX for `source` from NVRTC, via ctypes (the wheel has no nvcc driver)."""
    nvrtc = ctypes.CDLL(libnvrtc)
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"gdn1_kernel.cu", 0, None, None) == 0
    try:
        encoded = [o.encode() for o in options]
        status = nvrtc.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        assert status == 0 and b"warning" not in log.value, log.value.decode()
        nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        assert nvrtc.nvrtcGetPTX(program, ptx) == 0
        return ptx.value.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


def test_kernel_compiles_for_jetson_nano_sm53(tmp_path):
    libnvrtc = cu11_wheel_file("cuda_nvrtc", "lib/libnvrtc.so.11*")
    ptxas = cu11_wheel_file("cuda_nvcc", "bin/ptxas")
    with open(KERNEL) as f:
        ptx = nvrtc_ptx(libnvrtc, f.read(), ["--gpu-architecture=compute_53", "--std=c++14",
                                             "--include-path=" + ENGINES])
    assert ".target sm_53" in ptx and "gdn1_kernel" in ptx
    (tmp_path / "gdn1.ptx").write_text(ptx)
    out = run([ptxas, "-arch=sm_53", "-v", tmp_path / "gdn1.ptx", "-o", tmp_path / "gdn1.cubin"])
    assert (tmp_path / "gdn1.cubin").stat().st_size > 0
    assert NO_LOCAL_MEMORY in out


def tensorrt_headers():
    """TENSORRT_INCLUDE_DIR and the TensorRT major version its NvInferVersion.h declares."""
    include = os.environ.get("TENSORRT_INCLUDE_DIR")
    if not include:
        pytest.skip("TENSORRT_INCLUDE_DIR not set (NVIDIA's headers come from no package registry: point it at "
                    "a TensorRT include/ folder, e.g. JetPack's /usr/include/aarch64-linux-gnu)")
    with open(os.path.join(include, "NvInferVersion.h")) as f:
        match = re.search(r"#define\s+(?:NV_TENSORRT|TRT)_MAJOR(?:_ENTERPRISE)?\s+(\d+)", f.read())
    return include, int(match.group(1))


def cuda_include():
    include = os.environ.get("CUDA_INCLUDE_DIR", "/usr/local/cuda/include")
    if not os.path.isfile(os.path.join(include, "cuda_runtime_api.h")):
        pytest.skip("no cuda_runtime_api.h in {} (set CUDA_INCLUDE_DIR)".format(include))
    return include


@pytest.mark.parametrize("glue, exports", [
    ("v2", ["roiTrtInitPlugins"]),
    ("v3", ["roiTrtInitPlugins", "getCreators", "setLoggerFinder"]),
])
def test_glue_compiles_against_tensorrt_headers(glue, exports, tmp_path):
    include, major = tensorrt_headers()
    if glue == "v3" and major < 10:
        pytest.skip("IPluginV3 needs TensorRT 10+ headers; TENSORRT_INCLUDE_DIR holds {}.x".format(major))
    obj = tmp_path / "glue.o"
    run([tool("g++", "compiles the glue"), "-std=c++14", "-Wall", "-Wextra", "-Werror", "-fPIC", "-c",
         "-isystem", include, "-isystem", cuda_include(), os.path.join(ENGINES, "gdn1_plugin_{}.cpp".format(glue)),
         "-o", obj])
    defined = run(["nm", "--defined-only", obj]).split()
    assert all(name in defined for name in exports)


def cmake_configure(build, include, *extra):
    return run([tool("cmake", "builds engines/"), "-S", ENGINES, "-B", build,
                "-DCMAKE_CUDA_COMPILER=" + tool("nvcc", "needs a CUDA toolkit"),
                "-DTENSORRT_INCLUDE_DIR=" + include] + list(extra))


def test_cmake_picks_glue_by_tensorrt_version(tmp_path):
    include, major = tensorrt_headers()
    stand_in = tmp_path / "libnvinfer.so"  # configure only: nothing links against it
    stand_in.write_bytes(b"")
    out = cmake_configure(tmp_path / "build", include, "-DNVINFER_LIBRARY=" + str(stand_in))
    assert re.search(r"TensorRT {}\.\d+: {} plugin".format(major, "V2" if major < 10 else "V3"), out)


# Runs under the TensorRT 8.6 venv: registration, lookup, creation and serialization work without a GPU
# there; trt.Builder() and trt.Runtime() do not (the latter segfaults), so they are never created.
TRT86_SCRIPT = """
import ctypes, json, sys
import numpy as np
import tensorrt as trt
from roi_trt.backends.tensorrt.plugin import find_creator, load_plugin
from roi_trt.artifacts import file_sha256

ctypes.CDLL(sys.argv[1])  # all that trtexec --plugins does
registered_at_load = find_creator(trt) is not None
plugin = load_plugin(sys.argv[1])
again = load_plugin(sys.argv[1])
creator = plugin.creator
def fields(name, value):
    return trt.PluginFieldCollection([trt.PluginField(name, np.array([value], np.int32), trt.PluginFieldType.INT32)])
gdn = creator.create_plugin("gdn", fields(sys.argv[2], 1))
data = bytes(gdn.serialize())
print(json.dumps({
    "tensorrt": trt.__version__,
    "registered_at_load": registered_at_load,
    "creator": [creator.name, creator.plugin_version, creator.plugin_namespace],
    "fields": [f.name for f in creator.field_names],
    "under_empty_namespace": trt.get_plugin_registry().get_plugin_creator(creator.name, "1", "") is not None,
    "sha256_ok": plugin.sha256 == file_sha256(sys.argv[1]) and again.creator is not None,
    "plugin": [gdn.plugin_type, gdn.plugin_version, gdn.plugin_namespace, gdn.num_outputs],
    "serialized": data.hex(),
    "round_trip": bytes(creator.deserialize_plugin("gdn", data).serialize()).hex(),
    "inverse_2_rejected": creator.create_plugin("gdn", fields(sys.argv[2], 2)) is None,
    "missing_inverse_rejected": creator.create_plugin("gdn", trt.PluginFieldCollection([])) is None,
}))
"""


def test_plugin_registers_with_tensorrt86(tmp_path):
    venv = os.environ.get("ROI_TRT_TEST_TRT86")
    if not venv:
        pytest.skip("ROI_TRT_TEST_TRT86 not set (a Python <= 3.10 venv with tensorrt==8.6.0 and numpy from PyPI)")
    include, major = tensorrt_headers()
    if major != 8:
        pytest.skip("TENSORRT_INCLUDE_DIR holds TensorRT {}.x headers; the 8.6 library needs 8.x".format(major))
    python = os.path.join(venv, "bin", "python")
    trt_dir = run([python, "-c", "import os, tensorrt; print(os.path.dirname(tensorrt.__file__))"]).split()[-1]
    build = tmp_path / "build"
    cmake_configure(build, include, "-DTENSORRT_LIB_DIR=" + trt_dir, "-DCMAKE_CUDA_ARCHITECTURES=75")
    run(["cmake", "--build", build])
    library = build / "libroi_trt_gdn1.so"
    out = run([python, "-c", TRT86_SCRIPT, library, GDN1_INVERSE], cwd=str(tmp_path),
              env=dict(os.environ, PYTHONPATH=ROOT))
    result = json.loads(out.splitlines()[-1])
    assert result.pop("tensorrt").startswith("8.")
    assert result == {
        "registered_at_load": True,
        "creator": [GDN1_OP, GDN1_PLUGIN_VERSION, GDN1_PLUGIN_NAMESPACE],
        "fields": [GDN1_INVERSE],
        "under_empty_namespace": False,
        "sha256_ok": True,
        "plugin": [GDN1_OP, GDN1_PLUGIN_VERSION, GDN1_PLUGIN_NAMESPACE, 1],
        "serialized": "01000000",
        "round_trip": "01000000",
        "inverse_2_rejected": True,
        "missing_inverse_rejected": True,
    }


def test_locate_prefers_explicit_path_then_environment(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "a.so", tmp_path / "b.so"
    explicit.write_bytes(b"")
    from_env.write_bytes(b"")
    monkeypatch.setenv(loader.ENV_VAR, str(from_env))
    assert loader.locate(str(explicit)) == str(explicit)
    assert loader.locate() == str(from_env)
    monkeypatch.delenv(loader.ENV_VAR)
    assert loader.DEFAULT_PATH == os.path.join(ROOT, "engines", "build", "libroi_trt_gdn1.so")


def test_locate_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(loader.ENV_VAR, str(tmp_path / "gone.so"))
    with pytest.raises(PluginError, match=r"gone\.so \(\$ROI_TRT_PLUGIN\)"):
        loader.locate()


def test_load_plugin_without_tensorrt_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(MissingDependency, match=r"roi-trt\[tensorrt\]"):
        loader.load_plugin()


@pytest.mark.parametrize("source, message", [
    ("int unrelated(void) { return 0; }", "has no roiTrtInitPlugins"),
    ('extern "C" bool roiTrtInitPlugins(void*) { return false; }', "could not register roi_trt::GDN1"),
])
def test_load_plugin_rejects_libraries_that_do_not_register(source, message, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # never reached: no creator lookup
    library = gxx_shared_library(tmp_path, "not_gdn1", source)
    with pytest.raises(PluginError, match=message):
        loader.load_plugin(library)


@pytest.mark.gpu
def test_kernel_matches_host_reference_on_gpu(host_gdn1, tmp_path):
    runtime = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings asks the driver for devices")
    status, count = runtime.cudaGetDeviceCount()
    if status != runtime.cudaError_t.cudaSuccess or not count:
        pytest.skip("no CUDA device (cudaGetDeviceCount: {})".format(status))
    library = tmp_path / "libgdn1_kernel.so"
    run([tool("nvcc", "needs a CUDA toolkit"), "-arch=native", "-shared", "-Xcompiler", "-fPIC", KERNEL,
         "-o", library])
    kernel = ctypes.CDLL(str(library))
    kernel.gdn1_forward.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 4 + [ctypes.c_void_p]
    kernel.gdn1_forward.restype = ctypes.c_int

    def device_copy(array):
        status, pointer = runtime.cudaMalloc(max(array.nbytes, 1))
        assert status == runtime.cudaError_t.cudaSuccess
        runtime.cudaMemcpy(pointer, array.ctypes.data, array.nbytes, runtime.cudaMemcpyKind.cudaMemcpyHostToDevice)
        return pointer

    for batch, channels, height, width in KERNEL_SHAPES:
        for inverse in (0, 1):
            x, gamma, beta = random_layer(channels, seed=channels + inverse, batch=batch, height=height, width=width)
            pointers = [device_copy(a) for a in (x, gamma, beta, np.empty_like(x))]
            assert kernel.gdn1_forward(*pointers, batch, channels, height * width, inverse, None) == 0
            assert runtime.cudaDeviceSynchronize()[0] == runtime.cudaError_t.cudaSuccess
            y = np.empty_like(x)
            runtime.cudaMemcpy(y.ctypes.data, pointers[3], y.nbytes, runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost)
            for pointer in pointers:
                runtime.cudaFree(pointer)
            np.testing.assert_array_equal(y, host_gdn1(x, gamma, beta, inverse))
