"""The GDN1 TensorRT plugin (engines/) and its loader, each check where its tools exist.

Host arithmetic against float64 and CompressAI; the kernel's source emulated on CPU threads, compiled by
CUDA 13's nvcc (sm_75+) and by NVRTC + ptxas 11.8 (the Nano's sm_53), and run on a GPU; the TensorRT glue
against NVIDIA's headers (TENSORRT_INCLUDE_DIR, one or more folders), and for TensorRT 10+ headers the built
library's registration and logging against a registry built from them (tests/trt_registry_harness.cpp);
registration with a real TensorRT 8.6 library (ROI_TRT_TEST_TRT86). engines/README.md says how to set them.
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


@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_87", "sm_89", "sm_90", "sm_100", "sm_120"])
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
#define __launch_bounds__(...)
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


def tensorrt_headers(fits=lambda version: True, wanted="TensorRT headers"):
    """(include, (major, minor)) for each folder in TENSORRT_INCLUDE_DIR (one or more, os.pathsep-separated) whose
    NvInferVersion.h declares a version that `fits`; skips with the reason if there is none."""
    folders = [folder for folder in os.environ.get("TENSORRT_INCLUDE_DIR", "").split(os.pathsep) if folder]
    if not folders:
        pytest.skip("TENSORRT_INCLUDE_DIR not set (NVIDIA's headers come from no package registry: point it at one or "
                    "more TensorRT include/ folders separated by '{}', e.g. JetPack's /usr/include/aarch64-linux-gnu)"
                    .format(os.pathsep))
    found = []
    for include in folders:
        with open(os.path.join(include, "NvInferVersion.h")) as f:
            text = f.read()
        version = tuple(int(re.search(r"#define\s+(?:NV_TENSORRT|TRT)_{}(?:_ENTERPRISE)?\s+(\d+)".format(part),
                                      text).group(1)) for part in ("MAJOR", "MINOR"))
        found.append((include, version))
    fitting = [(include, version) for include, version in found if fits(version)]
    if not fitting:
        pytest.skip("TENSORRT_INCLUDE_DIR holds no {} (it has {})".format(
            wanted, ", ".join("{}.{}".format(*version) for _, version in found)))
    return fitting


def cuda_include():
    include = os.environ.get("CUDA_INCLUDE_DIR", "/usr/local/cuda/include")
    if not os.path.isfile(os.path.join(include, "cuda_runtime_api.h")):
        pytest.skip("no cuda_runtime_api.h in {} (set CUDA_INCLUDE_DIR)".format(include))
    return include


def glue_exports(glue, version):
    """The C entry points each glue exports: roiTrtInitPlugins, and TensorRT's own library-loading entry points
    (IPluginRegistry::loadLibrary) from 8.6 on."""
    if glue == "v3":
        return {"roiTrtInitPlugins", "getCreators", "setLoggerFinder"}
    return {"roiTrtInitPlugins"} | ({"getPluginCreators", "setLoggerFinder"} if version >= (8, 6) else set())


@pytest.mark.parametrize("glue", ["v2", "v3"])
def test_glue_compiles_against_tensorrt_headers(glue, tmp_path):
    fits = (lambda version: version >= (10, 0)) if glue == "v3" else (lambda version: True)
    for include, version in tensorrt_headers(fits, "TensorRT 10+ headers (IPluginV3)" if glue == "v3" else ""):
        obj = tmp_path / "glue.o"
        run([tool("g++", "compiles the glue"), "-std=c++14", "-Wall", "-Wextra", "-Werror", "-fPIC", "-c",
             "-isystem", include, "-isystem", cuda_include(),
             os.path.join(ENGINES, "gdn1_plugin_{}.cpp".format(glue)), "-o", obj])
        symbols = [line.split() for line in run(["nm", "--defined-only", "-g", obj]).splitlines()]
        assert {name for _, kind, name in symbols if kind == "T"} == glue_exports(glue, version), version


def cmake_configure(build, include, *extra):
    return run([tool("cmake", "builds engines/"), "-S", ENGINES, "-B", build,
                "-DCMAKE_CUDA_COMPILER=" + tool("nvcc", "needs a CUDA toolkit"),
                "-DTENSORRT_INCLUDE_DIR=" + include] + list(extra))


def test_cmake_picks_glue_by_tensorrt_version(tmp_path):
    stand_in = tmp_path / "libnvinfer.so"  # configure only: nothing links against it
    stand_in.write_bytes(b"")
    for include, (major, minor) in tensorrt_headers():
        build = tmp_path / "build{}_{}".format(major, minor)
        out = cmake_configure(build, include, "-DNVINFER_LIBRARY=" + str(stand_in))
        assert "TensorRT {}.{}: {} plugin".format(major, minor, "V2" if major < 10 else "V3") in out


def no_cuda_device():
    """True where the CUDA runtime (cuda-bindings) finds no device, None where that cannot be asked."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    status, count = runtime.cudaGetDeviceCount()
    return status != runtime.cudaError_t.cudaSuccess or count == 0


# Runs in its own process against tests/trt_registry_harness.cpp (the stand-in libnvinfer the library was linked
# with): loads the library as Triton does, then calls it as roi-trt's loader and TensorRT's loadLibrary do, and
# the V3 plugin as TensorRT's builder and runtime do, with the logger fallbacks one after another.
HARNESS_SCRIPT = """
import ctypes, json, os, sys
harness_path, library_path, glue, launch_fails = sys.argv[1:5]
harness = ctypes.CDLL(harness_path)
for pointer in (harness.harnessEntryCreator, harness.harnessFinder, harness.harnessGivenLogger):
    pointer.restype = ctypes.c_void_p
harness.harnessRegister.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
def described(call, *args):
    text = ctypes.create_string_buffer(512)
    value = call(*args + (text, len(text)))
    return value, text.value.decode()
def entries():
    return [described(harness.harnessDescribeEntry, i)[1] for i in range(harness.harnessEntries())]
def messages(logger):
    name = logger.encode()
    return [list(described(harness.harnessMessage, name, i)) for i in range(harness.harnessMessages(name))]
report = {}

library = ctypes.CDLL(library_path, mode=os.RTLD_NOW | os.RTLD_LOCAL)  # Triton: dlopen(path, RTLD_NOW | RTLD_LOCAL)
report["at_load"] = entries()
init = library.roiTrtInitPlugins
init.argtypes, init.restype = [ctypes.c_void_p], ctypes.c_bool
report["init"] = [init(None), init(None), entries(), harness.harnessRegisterCalls()]

if glue == "v3":
    report["no_logger"] = harness.harnessConfigure(2, 16)  # stderr
    harness.harnessEnableGlobalLogger(1)
    report["global_logger"] = harness.harnessConfigure(2, 16)
    library.setLoggerFinder.argtypes = [ctypes.c_void_p]
    library.setLoggerFinder(harness.harnessFinder())
    report["finder_logger"] = harness.harnessConfigure(2, 16)
    init(harness.harnessGivenLogger())
    report["given_logger"] = {
        "configure_2_inputs": harness.harnessConfigure(2, 16),
        "configure_8_channels": harness.harnessConfigure(3, 8),
        "configure_ok": harness.harnessConfigure(3, 16),
        "enqueue_3d_input": harness.harnessEnqueue(3, 16),
        "create_inverse_2": harness.harnessCreate(2),
    }
    if launch_fails == "1":
        report["given_logger"]["enqueue_without_gpu"] = harness.harnessEnqueue(4, 16)
    report["messages"] = {logger: messages(logger) for logger in ("global", "finder", "given")}

get_creators = getattr(library, "getCreators" if glue == "v3" else "getPluginCreators")
get_creators.argtypes, get_creators.restype = [ctypes.POINTER(ctypes.c_int32)], ctypes.POINTER(ctypes.c_void_p)
count = ctypes.c_int32()
registered = harness.harnessEntryCreator(0)
creators = get_creators(ctypes.byref(count))
report["handed_over"] = [count.value, creators[0] == registered, entries(), harness.harnessDeregisterCalls()]
harness.harnessRegister(creators[0], b"roi_trt")  # what loadLibrary does with them
get_creators(ctypes.byref(count))  # deregisterLibrary asks again
report["after_load_library"] = [entries(), harness.harnessDeregisterCalls(), init(None), entries()]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def harness_runs(tmp_path_factory):
    """HARNESS_SCRIPT's report and stderr for each glue built against each TensorRT 10+ header folder given."""
    headers = tensorrt_headers(lambda version: version >= (10, 0), "TensorRT 10+ headers")
    launch_fails = no_cuda_device()
    runs = []
    for include, (major, minor) in headers:
        work = tmp_path_factory.mktemp("trt{}_{}".format(major, minor))
        stand_in = work / "libnvinfer.so.{}".format(major)  # the soname the plugin library will ask for
        run([tool("g++", "builds the registry harness"), "-std=c++14", "-Wall", "-Wextra", "-Werror", "-shared",
             "-fPIC", "-fvisibility=hidden", "-Wl,-soname," + stand_in.name, "-isystem", include,
             "-isystem", cuda_include(), os.path.join(ROOT, "tests", "trt_registry_harness.cpp"), "-o", stand_in])
        for glue in ("v2", "v3"):
            build = work / glue
            cmake_configure(build, include, "-DNVINFER_LIBRARY=" + str(stand_in), "-DCMAKE_CUDA_ARCHITECTURES=75",
                            "-DROI_TRT_PLUGIN_API=" + glue.upper())
            run(["cmake", "--build", build])
            proc = subprocess.run([sys.executable, "-c", HARNESS_SCRIPT, stand_in, build / "libroi_trt_gdn1.so", glue,
                                   "1" if launch_fails else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True)
            assert proc.returncode == 0, proc.stderr
            runs.append(("{}.{} {}".format(major, minor, glue), glue, json.loads(proc.stdout), proc.stderr))
    return runs


SEVERITY_ERROR = 1  # nvinfer1::ILogger::Severity::kERROR
WRONG_COUNT = "needs 3 inputs (x, gamma, beta) and 1 output: got 2 and 1"


def gdn1_error(text):
    return [SEVERITY_ERROR, "roi_trt::GDN1 plugin: " + text]


def test_library_registers_when_loaded_like_triton_loads_it(harness_runs):
    """ABI test against NVIDIA's 10/11 headers: the library's load-time registration reaches IPluginRegistry
    (the harness's, built from those headers) under namespace roi_trt, once, also after roiTrtInitPlugins.
    What TensorRT's registry itself does with it is tested with the 8.6 library only (test below)."""
    for label, glue, report, _ in harness_runs:
        kind = "PLUGIN CREATOR_V3ONE" if glue == "v3" else "PLUGIN CREATOR_V1"
        entry = "{} {} {ns} {ns} {}".format(GDN1_OP, GDN1_PLUGIN_VERSION, kind, ns=GDN1_PLUGIN_NAMESPACE)
        assert report["at_load"] == [entry], label
        assert report["init"] == [True, True, [entry], 1], label


def test_library_hands_its_registration_to_load_library(harness_runs):
    """getCreators (getPluginCreators for V2) withdraws the load-time registration, since TensorRT's loadLibrary
    fails on a creator already registered (and unloads the library: measured with 8.6), and leaves the one
    loadLibrary made alone when asked again; roiTrtInitPlugins afterwards finds that one."""
    for label, _, report, _ in harness_runs:
        entry = report["at_load"][0]
        assert report["handed_over"] == [1, True, [], 1], label
        assert report["after_load_library"] == [[entry], 1, True, [entry]], label


def test_plugin_errors_reach_a_logger(harness_runs):
    """Each plugin error is logged with the plugin's name: to stderr while there is no logger, then to TensorRT's
    global logger (getLogger), then to the one loadLibrary's finder names in preference, then to the one given to
    roiTrtInitPlugins in preference to both."""
    for label, glue, report, stderr in harness_runs:
        if glue != "v3":
            continue
        assert report["no_logger"] == report["global_logger"] == report["finder_logger"] == -1, label
        assert "[roi_trt] [E] roi_trt::GDN1 plugin: " + WRONG_COUNT in stderr, label
        messages = report["messages"]
        assert messages["global"] == messages["finder"] == [gdn1_error(WRONG_COUNT)], label
        statuses = report["given_logger"]
        expected = [gdn1_error(WRONG_COUNT), gdn1_error("gamma and beta must match the input's channel count"),
                    gdn1_error("input must be 4-D (NCHW)"), gdn1_error("field 'inverse' must be one INT32, 0 or 1")]
        assert messages["given"][:4] == expected, label
        assert statuses.pop("configure_ok") == 0, label
        if "enqueue_without_gpu" in statuses:  # cudaLaunchKernel fails where there is no GPU
            assert statuses.pop("enqueue_without_gpu") == 1, label
            assert messages["given"][4][1].startswith("roi_trt::GDN1 plugin: kernel launch failed: "), label
        assert statuses == {"configure_2_inputs": -1, "configure_8_channels": -1, "enqueue_3d_input": 1,
                            "create_inverse_2": -1}, label


# Runs under the TensorRT 8.6 venv: registration, lookup, creation, serialization and plugin-library loading work
# without a GPU there; trt.Builder() and trt.Runtime() do not (the latter segfaults), so they are never created.
TRT86_SCRIPT = """
import ctypes, json, os, sys
import numpy as np
import tensorrt as trt
from roi_trt.backends.tensorrt.plugin import find_creator, load_plugin
from roi_trt.artifacts import file_sha256

path, inverse_field, first = sys.argv[1:4]
registry = trt.get_plugin_registry()
def registered():
    return sum(c.name == "GDN1" and c.plugin_namespace == "roi_trt" for c in registry.plugin_creator_list)
def load_library():  # trtexec --dynamicPlugins
    return [registry.load_library(path) is not None, registered()]
report = {"tensorrt": trt.__version__}
if first == "load_library":
    report["load_library"] = load_library()
ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)  # as Triton's TensorRT backend loads plugins=
report["registered_at_load"] = registered()
plugin = load_plugin(path)
again = load_plugin(path)
report["registered_after_init"] = registered()
if first == "dlopen":
    report["load_library"] = load_library()
creator = plugin.creator
def fields(name, value):
    return trt.PluginFieldCollection([trt.PluginField(name, np.array([value], np.int32), trt.PluginFieldType.INT32)])
gdn = creator.create_plugin("gdn", fields(inverse_field, 1))
data = bytes(gdn.serialize())
report.update({
    "found": find_creator(trt) is not None,
    "creator": [creator.name, creator.plugin_version, creator.plugin_namespace],
    "fields": [f.name for f in creator.field_names],
    "under_empty_namespace": registry.get_plugin_creator(creator.name, "1", "") is not None,
    "sha256_ok": plugin.sha256 == file_sha256(path) and again.creator is not None,
    "plugin": [gdn.plugin_type, gdn.plugin_version, gdn.plugin_namespace, gdn.num_outputs],
    "serialized": data.hex(),
    "round_trip": bytes(creator.deserialize_plugin("gdn", data).serialize()).hex(),
    "inverse_2_rejected": creator.create_plugin("gdn", fields(inverse_field, 2)) is None,
    "missing_inverse_rejected": creator.create_plugin("gdn", trt.PluginFieldCollection([])) is None,
})
print(json.dumps(report))
"""


@pytest.mark.parametrize("first", ["dlopen", "load_library"])
def test_plugin_registers_with_tensorrt86(first, tmp_path):
    """The library in the real TensorRT 8.6 registry, loaded as Triton does (dlopen, RTLD_NOW | RTLD_LOCAL) and by
    TensorRT's own loadLibrary, in either order: one creator, found under roi_trt; errors on stderr (TensorRT's
    getLogger() is null there: without a GPU no builder or runtime exists)."""
    venv = os.environ.get("ROI_TRT_TEST_TRT86")
    if not venv:
        pytest.skip("ROI_TRT_TEST_TRT86 not set (a Python <= 3.10 venv with tensorrt==8.6.0 and numpy from PyPI)")
    python = os.path.join(venv, "bin", "python")
    trt_dir, trt_version = run([python, "-c", "import os, tensorrt; print(os.path.dirname(tensorrt.__file__), "
                                              "tensorrt.__version__)"]).split()[-2:]
    release = tuple(int(part) for part in trt_version.split(".")[:2])
    include, _ = tensorrt_headers(lambda version: version == release, "TensorRT {}.{} headers".format(*release))[0]
    build = tmp_path / "build"
    cmake_configure(build, include, "-DTENSORRT_LIB_DIR=" + trt_dir, "-DCMAKE_CUDA_ARCHITECTURES=75")
    run(["cmake", "--build", build])
    library = build / "libroi_trt_gdn1.so"
    out = run([python, "-c", TRT86_SCRIPT, library, GDN1_INVERSE, first], cwd=str(tmp_path),
              env=dict(os.environ, PYTHONPATH=ROOT))
    result = json.loads(out.splitlines()[-1])
    assert result.pop("tensorrt").startswith("8.")
    assert result == {
        "load_library": [True, 1],
        "registered_at_load": 1,
        "registered_after_init": 1,
        "found": True,
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
    for error in ("field 'inverse' must be one INT32, 0 or 1", "field 'inverse' is missing"):
        assert "[roi_trt] [E] roi_trt::GDN1 plugin: " + error in out


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
