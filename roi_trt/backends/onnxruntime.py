"""ONNX Runtime backend: CUDA when onnxruntime-gpu finds a GPU, else CPU."""

import os

from ..errors import BackendError
from .base import Backend


def _cuda_fp32(ort):
    """CUDA EP with TF32 off (FP32 as in the paper's protocol); the option exists from ONNX Runtime 1.17."""
    version = tuple(int(v) for v in ort.__version__.split(".")[:2])
    return ("CUDAExecutionProvider", {"use_tf32": "0"}) if version >= (1, 17) else "CUDAExecutionProvider"


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, export_dir, manifest, threads=None, providers=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnxruntime backend needs: pip install onnxruntime") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        available = ort.get_available_providers()
        self.providers = providers or [
            _cuda_fp32(ort) if p == "CUDAExecutionProvider" else p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in available
        ]
        files = manifest["files"]
        self.variant, self._encoder = self._session(ort, export_dir, files, "encoder", options)
        _, self._decoder = self._session(ort, export_dir, files, "decoder", options)

    def _session(self, ort, export_dir, files, part, options):
        """The custom-op file where this ONNX Runtime inlines local functions, else the standard-ops file.

        ONNX Runtime 1.10 (the last for Python 3.6, i.e. JetPack 4.6) rejects GDN1 as an unknown op.
        """
        errors = []
        for variant, key in (("custom-op", part), ("standard-ops", part + "_std")):
            path = os.path.join(export_dir, files[key]["path"])
            try:
                return variant, ort.InferenceSession(path, options, providers=self.providers)
            except Exception as exc:  # ONNX Runtime raises its own exception types per failure
                errors.append("{}: {}".format(os.path.basename(path), str(exc).strip().splitlines()[0]))
        raise BackendError("onnxruntime cannot load the model: " + "; ".join(errors))

    @property
    def device(self):
        return "cuda" if self._encoder.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def analysis(self, x):
        return self._encoder.run(None, {"image": x})[0]

    def synthesis(self, y_hat):
        return self._decoder.run(None, {"latent_hat": y_hat})[0]
