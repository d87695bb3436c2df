"""`roi-trt doctor`: what this machine can run, per target (the GPU self-test is roi_trt.selftest).

Nothing here creates a TensorRT Builder or Runtime.
"""

import importlib
import platform

from . import __version__, cuda
from .build import targets
from .errors import RoiTrtError
from .optional import version_tuple



def _module(name):
    """(version or 'installed', None) or (None, why not)."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # missing, or broken (e.g. a library it links is absent): both are reported
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return getattr(module, "__version__", "installed"), None


def _line(label, value):
    return "{:<23}{}".format(label + ":", value)


def report():
    """-> lines: installed pieces, CUDA devices, the plugin library, and what each target still needs."""
    lines = [_line("roi-trt", "{} (Python {}, {})".format(__version__, platform.python_version(), platform.machine()))]
    found = {}
    for name, label in (("roi_trt._rans", "rANS core"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx (rewrites)"),
                        ("tensorrt", "tensorrt"), ("pycuda.driver", "pycuda"), ("cuda.bindings.runtime", "cuda-bindings")):
        version, why = _module(name)
        found[name] = version
        lines.append(_line(label, version if version else "unavailable ({})".format(why)))
    if found["onnxruntime"]:
        import onnxruntime

        lines.append(_line("onnxruntime providers", ", ".join(onnxruntime.get_available_providers())))
    detection = cuda.detect()
    for device in detection.devices:
        lines.append(_line("CUDA device {}".format(device.index), "{}, compute capability {}, {:.1f} GiB".format(
            device.name, cuda.cc_text(device.compute_capability), device.total_memory / 2.0 ** 30)))
    if not detection.devices:
        lines.append(_line("CUDA devices", detection.reason))
    from .artifacts import file_sha256
    from .backends.tensorrt import plugin

    try:
        library = plugin.locate()
        lines.append(_line("GDN1 plugin", "{} (sha256 {})".format(library, file_sha256(library)[:16])))
    except RoiTrtError as exc:
        library = None
        lines.append(_line("GDN1 plugin", str(exc)))
    version = version_tuple(found["tensorrt"]) if found["tensorrt"] else None
    for target in list(targets.TARGETS.values()) + [targets.GENERIC]:
        missing = []
        if not any(d.compute_capability in target.compute_capabilities or not target.compute_capabilities
                   for d in detection.devices):
            missing.append("a GPU of compute capability {}".format(
                "/".join(cuda.cc_text(cc) for cc in target.compute_capabilities)) if target.compute_capabilities
                else "a CUDA GPU")
        if version is None or not targets.supports_tensorrt(target, version):
            missing.append(targets.tensorrt_text(target))
        if not (found["pycuda.driver"] or found["cuda.bindings.runtime"] or cuda.cudart_paths()):
            missing.append("pycuda, cuda-bindings or libcudart")
        needs = "ready" if not missing else "needs " + ", ".join(missing)
        if library is None:
            needs += " (and the GDN1 plugin library for --gdn plugin)"
        lines.append(_line("target " + target.name, needs))
    for device in detection.devices:
        lines.append(_line("--target auto on {}".format(device.index), targets.auto(device.compute_capability)[1]))
    return lines
