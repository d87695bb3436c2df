"""GPU paths: run only where a GPU exists (none does in this project's CI; they skip with the reason)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from roi_trt.codec import open_codec
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos

pytestmark = pytest.mark.gpu


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="no CUDA execution provider (needs onnxruntime-gpu and an NVIDIA GPU)")
def test_onnxruntime_cuda_decodes_cpu_streams(export_dir):
    rgb, _ = load_rgb(sample_photos()[0])
    gpu = open_codec(export_dir, backend="onnxruntime")
    assert gpu.backend.device == "cuda"
    stream, _ = gpu.encode(rgb)
    cpu = open_codec(export_dir, backend="onnxruntime", device="cpu")
    a, _ = gpu.decode(stream)
    b, _ = cpu.decode(stream)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device for torch")
def test_paper_pipeline_on_cuda_keeps_fp32(tmp_path):
    from roi_trt.bench.latency import build_methods

    methods, notes = build_methods(["128-2"], ["torch"], [], [], device="cuda")
    assert not notes and methods[0].device.startswith("cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    x = methods[0].prepare(np.zeros((64, 64, 3), np.uint8))
    payload, encoded = methods[0].encode(x)
    assert methods[0].decode(encoded).shape == (64, 64, 3) and payload
