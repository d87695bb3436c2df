"""PyTorch eager backend: the reference implementation, for comparisons and for machines without ONNX Runtime."""

from ..optional import require
from ..spec import PARTS
from .base import Backend


def strict_fp32(torch):
    """The paper's protocol is FP32: no TF32 in cuDNN convolutions or matmuls on Ampere and newer."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model, parts=PARTS, threads=None, device=None, frames=1):
        torch = self._torch = require("torch", "the torch backend")
        if threads:
            torch.set_num_threads(int(threads))
        self._device = torch.device(device or "cpu")
        if self._device.type == "cuda":
            strict_fp32(torch)
        self._net = model.torch_model()
        super(TorchBackend, self).__init__(model, parts, threads, device)

    def _load(self, part):
        module = self._net._encoder if part == "encoder" else self._net._decoder
        return module.to(self._device).eval()

    @property
    def device(self):
        return str(self._device)

    def _run(self, part, array):
        torch = self._torch
        with torch.no_grad():
            out = self._parts[part](torch.from_numpy(array).to(self._device))
            return out.cpu().numpy()  # synchronizes, so timings include the device work and the copy back
