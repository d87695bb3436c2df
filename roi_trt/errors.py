"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class RoiTrtError(Exception):
    """Base of every error caused by user input (files, options), as opposed to a bug."""


class CheckpointError(RoiTrtError):
    pass


class ExportError(RoiTrtError):
    pass


class ModelError(RoiTrtError):
    """MODEL cannot be resolved or its files are unusable."""


class ModelMismatchError(RoiTrtError):
    """A stream or file belongs to another model."""


class BitstreamError(RoiTrtError):
    pass


class BackendError(RoiTrtError):
    pass


class PluginError(RoiTrtError):
    """The GDN1 TensorRT plugin library is missing, does not load or does not register."""


class OutputExistsError(RoiTrtError):
    """An output file exists and the user did not ask to replace it."""


class UsageError(RoiTrtError):
    """Options or inputs that cannot work together; nothing was done."""


class BuildError(RoiTrtError):
    """A TensorRT engine cannot be built here (no GPU, wrong target, ONNX the parser rejects, ...)."""


class EngineError(RoiTrtError):
    """A TensorRT engine file is refused (its sidecar does not match) or does not load."""
