"""Runtime backends behind one small interface (`Backend`); each imports its runtime lazily."""

from ..errors import BackendError

BACKENDS = ("onnxruntime", "torch")


def backend_class(name):
    """The class for `name`, importing only that backend's module."""
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend as cls
    elif name == "torch":
        from .torch import TorchBackend as cls
    else:
        raise BackendError("unknown backend {!r} (choose from {})".format(name, ", ".join(BACKENDS)))
    return cls
