"""Bit compatibility with CompressAI's EntropyBottleneck, both directions, on random and real latents."""

import numpy as np
import pytest
import torch

from helpers import make_model
from roi_trt.entropy import decode_latent, encode_latent
from roi_trt.model import entropy_tables
from roi_trt.imageio import load_rgb, pad_to_multiple, to_nchw
from roi_trt.samples import sample_photos


@pytest.fixture(scope="module", params=[(128, 2), (256, 1)], ids=["128-2", "256-1"])
def model(request):
    return make_model(*request.param, seed=11)


def random_latent(N, shape, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(1, N, *shape, generator=g) * 6
    y[0, :, 0, 0] = torch.linspace(-5000, 5000, N)  # far outside every CDF: bypass coding
    return y


def real_latents(model):
    for path in sample_photos():
        rgb, _ = load_rgb(path)
        x = torch.from_numpy(pad_to_multiple(to_nchw(rgb), model.downsampling))
        with torch.no_grad():
            yield model._encoder(x)


def latents(model):
    yield random_latent(model.N, (32, 32), 0)
    yield random_latent(model.N, (5, 11), 1)
    yield from real_latents(model)


def test_streams_are_byte_identical_and_cross_decode(model):
    tables = entropy_tables(model._bottleneck)
    eb = model._bottleneck
    for y in latents(model):
        ours = encode_latent(y[0].numpy(), tables)
        theirs = eb.compress(y)[0]
        assert ours == theirs
        hw = tuple(y.shape[-2:])
        np.testing.assert_array_equal(decode_latent(theirs, tables, hw), eb.decompress([ours], hw)[0].numpy())


def test_dequantized_values_match_compressai_rounding(model):
    tables = entropy_tables(model._bottleneck)
    y = random_latent(model.N, (8, 8), 2)
    y[0, 0, 1, 1] = float(model._bottleneck.quantiles[0, 0, 1].detach()) + 0.5  # near a .5 tie: both round half to even
    decoded = decode_latent(encode_latent(y[0].numpy(), tables), tables, (8, 8))
    expected = model._bottleneck.decompress(model._bottleneck.compress(y), (8, 8))[0].numpy()
    np.testing.assert_array_equal(decoded, expected)


def test_non_finite_latent_is_an_error(model):
    from roi_trt.errors import RoiTrtError

    y = np.zeros((model.N, 2, 2), np.float32)
    y[0, 0, 0] = np.nan
    with pytest.raises(RoiTrtError, match="non-finite"):
        encode_latent(y, entropy_tables(model._bottleneck))
