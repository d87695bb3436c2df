"""CUDA without torch: which GPUs exist, and the few runtime calls the TensorRT runner makes.

Detection asks the CUDA runtime (NVIDIA's cuda-bindings, else ctypes on a libcudart.so found on the
system) and never creates a context, so it is safe to run before TensorRT: without a device,
`trt.Builder` fails with CUDA error 35 and `trt.Runtime()` crashes the process. The runner's calls
(stream, device and pinned host buffers, async copies) go through pycuda where installed (what a
Jetson Nano on Python 3.6 has), else the cudart that found the device. ROI_TRT_CUDA=pycuda,
cuda-bindings or libcudart chooses one.
"""

import collections
import contextlib
import ctypes
import ctypes.util
import glob
import os
import sys
import threading

import numpy as np

from .errors import BackendError
from .fileio import distinct_files

Device = collections.namedtuple("Device", "index name compute_capability total_memory")
# devices: list of Device; reason: why there are none (else None); api: the cudart that answered
Detection = collections.namedtuple("Detection", "devices reason api")

ENV_VAR = "ROI_TRT_CUDA"
LIBRARIES = ("pycuda", "cuda-bindings", "libcudart")
HOST_TO_DEVICE, DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor/Minor


def _error(function, code, name, text):
    return BackendError("{}: CUDA error {}, {} ({})".format(function, code, name, text))


class _RuntimeCalls(object):
    """The CUDA runtime calls that look alike through either binding: a name and its arguments."""

    def set_device(self, index):
        self._call("cudaSetDevice", index)

    def stream_synchronize(self, stream):
        self._call("cudaStreamSynchronize", stream)

    def stream_destroy(self, stream):
        self._call("cudaStreamDestroy", stream)

    def free(self, ptr):
        self._call("cudaFree", ptr)

    def free_host(self, ptr):
        self._call("cudaFreeHost", ptr)

    def event_record(self, event, stream):
        self._call("cudaEventRecord", event, stream)

    def event_destroy(self, event):
        self._call("cudaEventDestroy", event)


class BindingsApi(_RuntimeCalls):
    """The CUDA runtime through NVIDIA's cuda-bindings (`cuda.bindings.runtime`; older cuda-python: `cuda.cudart`)."""

    library = "cuda-bindings"

    def __init__(self):
        try:
            from cuda.bindings import runtime
        except ImportError:
            from cuda import cudart as runtime
        self._rt = runtime
        self.label = "cuda-bindings"

    def _call(self, function, *args):
        result = getattr(self._rt, function)(*args)
        code = int(result[0])
        if code:
            raise _error(function, code, self._rt.cudaGetErrorName(code)[1].decode(),
                         self._rt.cudaGetErrorString(code)[1].decode())
        return result[1] if len(result) == 2 else (tuple(result[1:]) or None)

    def device_count(self):
        return self._call("cudaGetDeviceCount")

    def driver_version(self):
        return self._call("cudaDriverGetVersion")

    def runtime_version(self):
        return self._call("cudaRuntimeGetVersion")

    def properties(self, index):
        prop = self._call("cudaGetDeviceProperties", index)
        return _name(prop.name), (prop.major, prop.minor), int(prop.totalGlobalMem)

    def mem_get_info(self):
        free, total = self._call("cudaMemGetInfo")
        return int(free), int(total)

    def event_create(self):
        return self._call("cudaEventCreate")

    def event_elapsed_ms(self, start, end):
        self._call("cudaEventSynchronize", end)
        return float(self._call("cudaEventElapsedTime", start, end))

    def stream_create(self):
        return int(self._call("cudaStreamCreate"))

    def malloc(self, nbytes):
        return int(self._call("cudaMalloc", nbytes))

    def malloc_host(self, nbytes):
        return int(self._call("cudaMallocHost", nbytes))

    def memcpy_async(self, dst, src, nbytes, kind, stream):
        self._call("cudaMemcpyAsync", dst, src, nbytes, self._rt.cudaMemcpyKind(kind), stream)


class _PropertiesPrefix(ctypes.Structure):
    """The head of cudaDeviceProp, laid out alike from CUDA 10.0 to 13; the rest is room for the struct."""

    _fields_ = [("name", ctypes.c_char * 256), ("uuid", ctypes.c_ubyte * 16), ("luid", ctypes.c_char * 8),
                ("luidDeviceNodeMask", ctypes.c_uint), ("totalGlobalMem", ctypes.c_size_t),
                ("rest", ctypes.c_ubyte * 8192)]


class CtypesApi(_RuntimeCalls):
    """The CUDA runtime through ctypes on one libcudart.so (no Python dependency)."""

    library = "libcudart"
    _SIGNATURES = {
        "cudaGetDeviceCount": [ctypes.POINTER(ctypes.c_int)],
        "cudaDriverGetVersion": [ctypes.POINTER(ctypes.c_int)],
        "cudaRuntimeGetVersion": [ctypes.POINTER(ctypes.c_int)],
        "cudaDeviceGetAttribute": [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int],
        "cudaGetDeviceProperties": [ctypes.POINTER(_PropertiesPrefix), ctypes.c_int],
        "cudaSetDevice": [ctypes.c_int],
        "cudaMemGetInfo": [ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)],
        "cudaEventCreate": [ctypes.POINTER(ctypes.c_void_p)],
        "cudaEventRecord": [ctypes.c_void_p, ctypes.c_void_p],
        "cudaEventSynchronize": [ctypes.c_void_p],
        "cudaEventElapsedTime": [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p],
        "cudaEventDestroy": [ctypes.c_void_p],
        "cudaStreamCreate": [ctypes.POINTER(ctypes.c_void_p)],
        "cudaStreamSynchronize": [ctypes.c_void_p],
        "cudaStreamDestroy": [ctypes.c_void_p],
        "cudaMalloc": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t],
        "cudaFree": [ctypes.c_void_p],
        "cudaMallocHost": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t],
        "cudaFreeHost": [ctypes.c_void_p],
        "cudaMemcpyAsync": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p],
    }

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        for function, argtypes in self._SIGNATURES.items():
            getattr(lib, function).argtypes = argtypes
            getattr(lib, function).restype = ctypes.c_int
        for function in ("cudaGetErrorName", "cudaGetErrorString"):
            getattr(lib, function).argtypes = [ctypes.c_int]
            getattr(lib, function).restype = ctypes.c_char_p
        self._lib, self.path = lib, path
        self.label = path

    def _call(self, function, *args):
        code = getattr(self._lib, function)(*args)
        if code:
            raise _error(function, code, self._lib.cudaGetErrorName(code).decode(),
                         self._lib.cudaGetErrorString(code).decode())

    def _int_out(self, function, *args):
        value = ctypes.c_int()
        self._call(function, ctypes.byref(value), *args)
        return value.value

    def _pointer_out(self, function, *args):
        value = ctypes.c_void_p()
        self._call(function, ctypes.byref(value), *args)
        return value.value or 0

    def device_count(self):
        return self._int_out("cudaGetDeviceCount")

    def driver_version(self):
        return self._int_out("cudaDriverGetVersion")

    def runtime_version(self):
        return self._int_out("cudaRuntimeGetVersion")

    def properties(self, index):
        prop = _PropertiesPrefix()
        self._call("cudaGetDeviceProperties", ctypes.byref(prop), index)
        cc = tuple(self._int_out("cudaDeviceGetAttribute", attr, index) for attr in (_ATTR_CC_MAJOR, _ATTR_CC_MINOR))
        return _name(prop.name), cc, int(prop.totalGlobalMem)

    def mem_get_info(self):
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._call("cudaMemGetInfo", ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value

    def event_create(self):
        return self._pointer_out("cudaEventCreate")

    def event_elapsed_ms(self, start, end):
        self._call("cudaEventSynchronize", end)
        ms = ctypes.c_float()
        self._call("cudaEventElapsedTime", ctypes.byref(ms), start, end)
        return ms.value

    def stream_create(self):
        return self._pointer_out("cudaStreamCreate")

    def malloc(self, nbytes):
        return self._pointer_out("cudaMalloc", nbytes)

    def malloc_host(self, nbytes):
        return self._pointer_out("cudaMallocHost", nbytes)

    def memcpy_async(self, dst, src, nbytes, kind, stream):
        self._call("cudaMemcpyAsync", dst, src, nbytes, kind, stream)


def _name(raw):
    if isinstance(raw, str):
        return raw.split("\0")[0]
    return bytes(raw).split(b"\0")[0].decode("utf-8", "replace")


def cudart_paths():
    """Distinct libcudart.so files: the linker's, $LD_LIBRARY_PATH, CUDA installs, pip's nvidia-* wheels."""
    candidates = [ctypes.util.find_library("cudart")]
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/lib"] + sorted(glob.glob("/usr/local/cuda-*/lib*"), reverse=True)
    dirs += [os.path.join(entry, "nvidia", "*", "lib") for entry in sys.path if entry]
    for pattern in dirs:
        candidates += sorted(glob.glob(os.path.join(pattern, "libcudart.so*")), reverse=True)
    found = [p for p in candidates[1:] if os.path.isfile(p)]
    if candidates[0] and candidates[0] not in [os.path.basename(p) for p in found]:
        found.insert(0, candidates[0])  # a soname the linker knows, in a directory not searched above
    return distinct_files(found)


_apis = None
_apis_lock = threading.Lock()


def cudart_apis():
    """The CUDA runtimes this process can call: cuda-bindings first, then each libcudart.so that loads."""
    global _apis
    with _apis_lock:
        if _apis is None:
            found = []
            try:
                found.append(BindingsApi())
            except ImportError:
                pass
            for path in cudart_paths():
                try:
                    found.append(CtypesApi(path))
                except (OSError, AttributeError):  # not loadable here, or too old to have these functions
                    pass
            _apis = found
        return list(_apis)


def _ask(api):
    """-> (devices, why none) from one cudart."""
    try:
        count = api.device_count()
    except BackendError as exc:
        try:
            driverless = api.driver_version() == 0
        except BackendError:
            driverless = False
        return [], "{}{}".format("no NVIDIA driver is loaded: " if driverless else "", exc)
    if not count:
        return [], "the driver reports no CUDA device"
    return [Device(i, *api.properties(i)) for i in range(count)], None


def detect(apis=None):
    """The CUDA devices, from the first cudart (of `apis`, default `cudart_apis()`) that finds any."""
    asked = collections.OrderedDict()  # why none -> the cudarts that said so
    for api in cudart_apis() if apis is None else apis:
        devices, reason = _ask(api)
        if devices:
            return Detection(devices, None, api)
        asked.setdefault(reason, []).append(api.label)
    if not asked:
        return Detection([], "no CUDA device: no CUDA runtime found (neither cuda-bindings nor a libcudart.so)", None)
    return Detection([], "no CUDA device: " + "; ".join(
        "{} (asked {})".format(reason, ", ".join(labels)) for reason, labels in asked.items()), None)


# -- the runner's calls ---------------------------------------------------------------------------------

Stream = collections.namedtuple("Stream", "handle native")  # handle: int for TensorRT; native: the library's object
DeviceBuffer = collections.namedtuple("DeviceBuffer", "ptr nbytes native")
HostBuffer = collections.namedtuple("HostBuffer", "array nbytes native")  # array: pinned uint8 numpy array


class CudartRuntime(object):
    """Streams, buffers and copies through a cudart API (BindingsApi or CtypesApi) on one device."""

    def __init__(self, api, index):
        self.api, self.index, self.library = api, index, api.library

    @contextlib.contextmanager
    def active(self):
        self.api.set_device(self.index)  # per thread: the runtime API keeps a current device per thread
        yield

    def memory(self):
        """(free, total) bytes of the device (call while active)."""
        return self.api.mem_get_info()

    def event(self):
        return self.api.event_create()

    def record(self, event, stream):
        self.api.event_record(event, stream.handle)

    def elapsed_ms(self, start, end):
        """Milliseconds between two recorded events (waits for the second)."""
        return self.api.event_elapsed_ms(start, end)

    def destroy_event(self, event):
        self.api.event_destroy(event)

    def stream(self):
        handle = self.api.stream_create()
        return Stream(handle, handle)

    def synchronize(self, stream):
        self.api.stream_synchronize(stream.handle)

    def destroy_stream(self, stream):
        self.api.stream_destroy(stream.handle)

    def device_buffer(self, nbytes):
        ptr = self.api.malloc(nbytes)
        return DeviceBuffer(ptr, nbytes, ptr)

    def host_buffer(self, nbytes):
        ptr = self.api.malloc_host(nbytes)
        return HostBuffer(np.frombuffer((ctypes.c_uint8 * nbytes).from_address(ptr), np.uint8), nbytes, ptr)

    def free(self, buffer):
        if isinstance(buffer, HostBuffer):
            self.api.free_host(buffer.native)
        else:
            self.api.free(buffer.ptr)

    def to_device(self, buffer, host, nbytes, stream):
        self.api.memcpy_async(buffer.ptr, host.array.ctypes.data, nbytes, HOST_TO_DEVICE, stream.handle)

    def to_host(self, host, buffer, nbytes, stream):
        self.api.memcpy_async(host.array.ctypes.data, buffer.ptr, nbytes, DEVICE_TO_HOST, stream.handle)

    def close(self):
        pass


class PycudaRuntime(object):
    """The same calls through pycuda, on the device's primary context (the one TensorRT's runtime uses)."""

    library = "pycuda"

    def __init__(self, index):
        import pycuda.driver as drv

        self._drv = drv
        with self._errors("initializing"):
            drv.init()
            self._context = drv.Device(index).retain_primary_context()
        self.index = index

    @contextlib.contextmanager
    def _errors(self, doing):
        try:
            yield
        except self._drv.Error as exc:
            raise BackendError("pycuda failed {}: {}".format(doing, " ".join(str(exc).split()))) from None

    @contextlib.contextmanager
    def active(self):
        self._context.push()  # contexts are per thread in the driver API: push for every call
        try:
            yield
        finally:
            self._drv.Context.pop()

    def stream(self):
        with self._errors("creating a stream"):
            native = self._drv.Stream()
        return Stream(native.handle, native)

    def memory(self):
        with self._errors("asking for free memory"):
            return self._drv.mem_get_info()

    def event(self):
        with self._errors("creating an event"):
            return self._drv.Event()

    def record(self, event, stream):
        with self._errors("recording an event"):
            event.record(stream.native)

    def elapsed_ms(self, start, end):
        with self._errors("timing"):
            end.synchronize()
            return start.time_till(end)

    def destroy_event(self, event):
        pass  # freed with the object

    def synchronize(self, stream):
        with self._errors("synchronizing"):
            stream.native.synchronize()

    def destroy_stream(self, stream):
        pass  # freed with the object

    def device_buffer(self, nbytes):
        with self._errors("allocating device memory"):
            native = self._drv.mem_alloc(nbytes)
        return DeviceBuffer(int(native), nbytes, native)

    def host_buffer(self, nbytes):
        with self._errors("allocating pinned host memory"):
            array = self._drv.pagelocked_empty(nbytes, np.uint8)
        return HostBuffer(array, nbytes, array.base)

    def free(self, buffer):
        buffer.native.free()  # a DeviceAllocation or a HostAllocation

    def to_device(self, buffer, host, nbytes, stream):
        with self._errors("copying to the device"):
            self._drv.memcpy_htod_async(buffer.ptr, host.array[:nbytes], stream.native)

    def to_host(self, host, buffer, nbytes, stream):
        with self._errors("copying to the host"):
            self._drv.memcpy_dtoh_async(host.array[:nbytes], buffer.ptr, stream.native)

    def close(self):
        self._context = None  # releases the primary context


def device(index, error=BackendError, detection=None):
    """The CUDA device `index` (of `detection`, default `detect()`), checked before TensorRT is touched (its
    Builder fails and its Runtime crashes without one); `error` is the exception type the caller reports."""
    detection = detection or detect()
    if not detection.devices:
        raise error(detection.reason)
    if not 0 <= index < len(detection.devices):
        raise error("no CUDA device {} (this machine has {})".format(index, len(detection.devices)))
    return detection.devices[index]


def use_device(index, detection=None):
    """Make CUDA device `index` current on this thread, its context created: TensorRT's builder works on
    the current device, through a CUDA runtime of its own that sees contexts, not another runtime's choice.
    -> the cudart API that did it."""
    detection = detection or detect()
    device(index, BackendError, detection)
    detection.api.set_device(index)
    detection.api.free(0)  # cudaFree(NULL) creates the device's primary context and makes it current
    return detection.api


def free_memory(index, detection=None):
    """Free bytes on CUDA device `index` (cudaMemGetInfo there)."""
    return use_device(index, detection).mem_get_info()[0]


def cc_text(compute_capability):
    return "{}.{}".format(*compute_capability)


def version_text(encoded):
    """CUDA's version numbers (1000 * major + 10 * minor, e.g. 12040) -> '12.4'."""
    return "{}.{}".format(encoded // 1000, encoded % 1000 // 10) if encoded else ""


def open_runtime(index=0, library=None):
    """The runner's CUDA calls on device `index`: pycuda if installed, else the cudart that found the
    device; `library` (or $ROI_TRT_CUDA) forces one of LIBRARIES. BackendError when there is no device."""
    library = library or os.environ.get(ENV_VAR) or None
    if library is not None and library not in LIBRARIES:
        raise BackendError("${} must be one of {}, got {!r}".format(ENV_VAR, ", ".join(LIBRARIES), library))
    detection = detect()
    device(index, detection=detection)
    if library in (None, "pycuda"):
        try:
            return PycudaRuntime(index)
        except ImportError:
            if library == "pycuda":
                raise BackendError("pycuda is not installed (on a Jetson, jetson/install.sh builds it)") from None
    if library in (None, detection.api.library):
        return CudartRuntime(detection.api, index)
    for api in cudart_apis():
        if api.library == library:
            return CudartRuntime(api, index)
    raise BackendError("{} is not available here".format(library))
