"""Codec across backends and models: torch and ONNX Runtime streams interchange; other models are refused."""

import numpy as np
import pytest

from helpers import make_model, save
from roi_trt.codec import open_codec
from roi_trt.errors import ModelError, ModelMismatchError
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return [save({"state_dict": make_model(128, 2, seed=s).state_dict()}, d / f"m{s}.pt") for s in (1, 2)]


def test_torch_and_onnxruntime_streams_interchange(checkpoints):
    rgb, _ = load_rgb(sample_photos()[1])
    rgb = rgb[:200, :300]
    via_torch = open_codec(checkpoints[0], backend="torch")
    via_ort = open_codec(checkpoints[0], backend="onnxruntime")  # exported into the cache on first use
    assert via_torch.model.fingerprint == via_ort.model.fingerprint
    stream_t, _ = via_torch.encode(rgb)
    stream_o, _ = via_ort.encode(rgb)
    assert abs(len(stream_t) - len(stream_o)) <= 16  # a rare symbol may flip at a rounding boundary
    a, _ = via_ort.decode(stream_t)
    b, _ = via_torch.decode(stream_t)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_different_model_is_refused(checkpoints):
    rgb, _ = load_rgb(sample_photos()[0])
    stream, _ = open_codec(checkpoints[0], backend="torch").encode(rgb[:64, :64])
    with pytest.raises(ModelMismatchError):
        open_codec(checkpoints[1], backend="torch").decode(stream)


def test_torch_backend_needs_a_checkpoint(export_dir):
    with pytest.raises(ModelError, match="needs a checkpoint"):
        open_codec(export_dir, backend="torch")
