"""Runtime backends behind one contract (`base.Backend`); each imports its runtime lazily."""

from ..errors import BackendError
from ..spec import PARTS

BACKENDS = ("onnxruntime", "torch", "tensorrt")


def backend_class(name):
    """The class for `name`, importing only that backend's module."""
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend as cls
    elif name == "torch":
        from .torch import TorchBackend as cls
    elif name == "tensorrt":
        from .tensorrt.runner import TensorRTBackend as cls
    else:
        raise BackendError("unknown backend {!r} (choose from {})".format(name, ", ".join(BACKENDS)))
    return cls


def open_backend(model, name="auto", parts=PARTS, threads=None, device=None, frames=1):
    """A backend for a resolved model; `auto` is TensorRT for an engine directory, else ONNX Runtime (CUDA
    where onnxruntime-gpu finds a GPU). `frames`: how many frames the caller could transform at once."""
    if name == "auto":
        name = "tensorrt" if model.kind == "engine" else "onnxruntime"
    return backend_class(name)(model, parts=parts, threads=threads, device=device, frames=frames)
