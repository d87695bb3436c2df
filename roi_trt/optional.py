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


def require(module, purpose):
    """import_module(module), or MissingDependency naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if getattr(exc, "name", None) and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module exists but is broken: that error says more
        raise missing(module, purpose) from None
