"""Entropy coding of latents with the compiled rANS core (torch-free, Python 3.6).

Bit-compatible with CompressAI's `EntropyBottleneck.compress` / `decompress`: symbols are
round(y - median) per channel, the CDF index is the channel, one byte string per image. The core derives
each symbol's channel from its position, so no index array as large as the latent is made.
"""

import numpy as np

from . import _rans
from .errors import BitstreamError, RoiTrtError

MAX_ABS_SYMBOL = 1 << 30  # the core's limit; trained latents stay within a few hundred


def _table_args(tables):
    return tables.quantized_cdf, tables.cdf_length, tables.offset, tables.quantized_cdf.shape[1]


def quantize(y, tables):
    """float latent [C, H, W] -> int32 symbols, exactly as CompressAI rounds (half to even)."""
    shifted = np.rint(y.astype(np.float32) - tables.medians[:, None, None])
    if not np.all(np.isfinite(shifted)) or np.abs(shifted).max(initial=0) > MAX_ABS_SYMBOL:
        raise RoiTrtError("latent has non-finite or out-of-range values: the model output is broken")
    return shifted.astype(np.int32)


def dequantize(symbols, tables):
    return symbols.astype(np.float32) + tables.medians[:, None, None]


def encode_symbols(symbols, tables):
    channels, height, width = symbols.shape
    if channels != tables.channels:
        raise RoiTrtError("latent has {} channels, entropy tables {}".format(channels, tables.channels))
    return _rans.encode(np.ascontiguousarray(symbols, np.int32), height * width, *_table_args(tables))


def decode_symbols(data, tables, latent_hw):
    height, width = latent_hw
    out = np.empty((tables.channels, height, width), np.int32)
    try:
        _rans.decode(data, height * width, *_table_args(tables), out)
    except ValueError as exc:
        raise BitstreamError("entropy decoding failed: {}".format(exc)) from None
    return out


def encode_latent(y, tables):
    """float32 latent [C, H, W] -> rANS byte string."""
    return encode_symbols(quantize(y, tables), tables)


def decode_latent(data, tables, latent_hw):
    """rANS byte string -> dequantized float32 latent [C, H, W]."""
    return dequantize(decode_symbols(data, tables, latent_hw), tables)
