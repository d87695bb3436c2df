"""PyTorch eager backend: the reference implementation, for comparisons and for machines without ONNX Runtime."""

import numpy as np

from .base import Backend


def strict_fp32(torch):
    """The paper's protocol is FP32: no TF32 in cuDNN convolutions or matmuls on Ampere and newer."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model, device="cpu", threads=None):
        import torch

        self._torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        self._device = torch.device(device)
        if self._device.type == "cuda":
            strict_fp32(torch)
        self.model = model.to(self._device).eval()

    @property
    def device(self):
        return str(self._device)

    def _run(self, module, array):
        torch = self._torch
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(array)).to(self._device))
            return out.cpu().numpy()  # synchronizes, so timings include the device work and the copy back

    def analysis(self, x):
        return self._run(self.model._encoder, x)

    def synthesis(self, y_hat):
        return self._run(self.model._decoder, y_hat)
