"""ONNX Runtime backend: CUDA when onnxruntime-gpu finds a GPU (or `device="cuda"` asks for it), else CPU."""

import os

from ..errors import BackendError
from ..optional import require, version_tuple
from ..spec import PARTS
from .base import Backend


def _cuda_fp32(ort):
    """CUDA EP with TF32 off (FP32 as in the paper's protocol); the option exists from ONNX Runtime 1.17."""
    use_tf32 = version_tuple(ort.__version__) >= (1, 17)
    return ("CUDAExecutionProvider", {"use_tf32": "0"}) if use_tf32 else "CUDAExecutionProvider"


def usable_cores():
    """CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxRuntimeBackend(Backend):
    """On CPU, given a frame per core (or several frames and `threads` 1), one frame per core runs side by
    side, each single-threaded: one transform over every core waits at each operator for its slowest
    thread, which loses whenever another stage of a batch holds a core (benchmarks/throughput.py). A
    session may be run from several threads at once, but its runs share its intra-op threads, so only
    single-threaded runs are truly side by side; fewer frames or more `threads` run one at a time."""

    name = "onnxruntime"

    def __init__(self, model, parts=PARTS, threads=None, device=None, frames=1):
        ort = self._ort = require("onnxruntime", "the onnxruntime backend")
        available = ort.get_available_providers()
        if device not in (None, "auto", "cpu", "cuda"):
            raise BackendError("onnxruntime runs on cpu or cuda, not {!r}".format(device))
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendError("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        wanted = ("CPUExecutionProvider",) if device == "cpu" else ("CUDAExecutionProvider", "CPUExecutionProvider")
        self.providers = [_cuda_fp32(ort) if p == "CUDAExecutionProvider" else p for p in wanted if p in available]
        self.options = ort.SessionOptions()
        if self.providers[0] == "CPUExecutionProvider":
            # A memory pattern is planned and kept per input shape; tiles and images come in many shapes, and
            # without the patterns the arena reuses its blocks across them: 12 MP peak RSS 640 -> 470 MB
            # (encode), 950 -> 790 MB (decode), times unchanged (measured with ONNX Runtime 1.32).
            self.options.enable_mem_pattern = False
            cores = usable_cores()
            if frames > 1 and cores > 1 and (threads == 1 or (threads is None and frames >= cores)):
                self.frames, threads = min(frames, cores), 1
        if threads:
            self.options.intra_op_num_threads = int(threads)
        self.options.log_severity_level = 3
        super(OnnxRuntimeBackend, self).__init__(model, parts, threads, device)

    def _load(self, part):
        path = self.model.onnx_file(part, "onnxruntime", self._ort.__version__)
        try:
            session = self._ort.InferenceSession(path, self.options, providers=self.providers)
        except Exception as exc:  # ONNX Runtime raises its own exception types per failure
            raise BackendError("onnxruntime cannot load {}: {}".format(path, str(exc).strip().splitlines()[0])) from None
        return session, session.get_inputs()[0].name

    def _run(self, part, array):
        session, input_name = self._parts[part]
        return session.run(None, {input_name: array})[0]

    def memory_budget(self):
        """On CUDA a quarter of the GPU's free memory (its transforms' working memory is there), on a CPU the
        host's default."""
        if self.device != "cuda":
            return None
        from .. import cuda

        try:
            return cuda.free_memory(0) // 4
        except BackendError:  # no CUDA runtime roi-trt can call (ONNX Runtime brings its own): the host's
            return None

    @property
    def device(self):
        session = next(iter(self._parts.values()))[0]
        return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
