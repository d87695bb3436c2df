"""Optional dependencies, declared once: which extra installs each, and the one message a missing one gets."""

import importlib

from .errors import RoiTrtError

# importable name -> (pip package, roi-trt extra that pulls it in)
PACKAGES = {
    "torch": ("torch", "torch"),
    "torchvision": ("torchvision", "torch"),
    "compressai": ("compressai", "torch"),
    "onnx": ("onnx", "torch"),
    "skimage": ("scikit-image", "torch"),
    "matplotlib": ("matplotlib", "torch"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "tensorrt": ("tensorrt", "tensorrt"),
    # precision and privacy benchmarks, audit (facenet-pytorch: `pip install --no-deps`, its metadata pins an old torch)
    "facenet_pytorch": ("facenet-pytorch", None),
    "dlib": ("dlib-bin", "precision"),
    "face_recognition_models": ("face-recognition-models", "precision"),
    "cv2": ("opencv-python-headless", "precision"),
    "ultralytics": ("ultralytics", None),
}


class MissingDependency(RoiTrtError):
    pass


def install_hint(module):
    """'pip install ...' for an importable name (the extra when roi-trt has one for it)."""
    top = module.split(".")[0]
    package, extra = PACKAGES.get(top, (top, None))
    return "pip install 'roi-trt[{}]'".format(extra) if extra else "pip install {}".format(package)


def missing(module, purpose):
    """The error for `purpose` (e.g. 'roi-trt export') lacking `module`."""
    return MissingDependency("{} needs {}, which is not installed: {}".format(
        purpose, PACKAGES.get(module.split(".")[0], (module,))[0], install_hint(module)))


def broken(module, purpose, exc):
    """The error for `purpose` meeting an installed `module` that does not import (a missing shared library,
    a missing dependency of its own), naming the cause."""
    package = PACKAGES.get(module.split(".")[0], (module,))[0]
    cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return MissingDependency("{} needs {}, which is installed but does not import: {} (reinstall it, or install "
                             "what it names)".format(purpose, package, cause))


def import_failure(exc, purpose):
    """The one-line error for an ImportError raised while `purpose` ran: an optional package missing (with
    its install command) or installed but broken (with the cause); None when no optional package is
    involved (then it is a bug, and its traceback should show)."""
    import traceback

    name = getattr(exc, "name", None) or ""
    if isinstance(exc, ModuleNotFoundError) and name in PACKAGES:
        return missing(name, purpose)
    for frame, _ in traceback.walk_tb(exc.__traceback__):  # raised inside an optional package's own import
        top = frame.f_globals.get("__name__", "").split(".")[0]
        if top in PACKAGES:
            return broken(top, purpose, exc)
    if name.split(".")[0] in PACKAGES:  # one of its submodules is missing
        return broken(name, purpose, exc)
    return None


def require(module, purpose):
    """import_module(module), or MissingDependency naming what to install (or why the installed one fails)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and name and (module + ".").startswith(name + "."):
            raise missing(module, purpose) from None
        raise broken(module, purpose, exc) from None


def version_tuple(text):
    """A package's version as numbers to compare: '8.2.1.8' -> (8, 2, 1, 8); what follows the numbers, such as
    '.post1', 'rc1' or '+cuda12', is ignored. ValueError when it starts with no number."""
    numbers = []
    for part in str(text).split("+")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    if not numbers:
        raise ValueError("not a version: {!r}".format(text))
    return tuple(numbers)
