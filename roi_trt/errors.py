"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class RoiTrtError(Exception):
    """Base of every error caused by user input (files, options), as opposed to a bug."""


class CheckpointError(RoiTrtError):
    pass


class ExportError(RoiTrtError):
    pass


class ModelMismatchError(RoiTrtError):
    pass


class BitstreamError(RoiTrtError):
    pass


class BackendError(RoiTrtError):
    pass
