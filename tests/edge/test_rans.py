"""The compiled rANS core on its own: round trips, out-of-range values, malformed input."""

import numpy as np
import pytest

from roi_trt import _rans
from roi_trt.entropy import decode_symbols, encode_symbols
from roi_trt.errors import BitstreamError, ModelError, RoiTrtError
from roi_trt.artifacts import EntropyTables


def random_tables(rng, channels=16, max_len=40):
    """Quantized CDFs as CompressAI builds them: every symbol (and the tail) has frequency >= 1."""
    lengths = rng.integers(3, max_len, size=channels)
    cdf = np.zeros((channels, max_len + 2), np.int32)
    for c, n in enumerate(lengths):
        pmf = rng.random(n - 1) ** 4 + 1e-3
        freq = np.maximum(1, np.floor(pmf / pmf.sum() * (65536 - (n - 1)))).astype(np.int64) + 1
        freq[np.argmax(freq)] += 65536 - freq.sum()
        cdf[c, :n] = np.concatenate([[0], np.cumsum(freq)])
    offsets = -rng.integers(0, 10, size=channels)
    return EntropyTables(cdf, lengths, offsets, rng.normal(size=channels))


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_including_out_of_range_values(seed):
    rng = np.random.default_rng(seed)
    tables = random_tables(rng)
    symbols = rng.integers(-12, 40, size=(16, 9, 7)).astype(np.int32)
    symbols.flat[rng.integers(0, symbols.size, 5)] = rng.integers(-(1 << 30), 1 << 30, size=5)
    data = encode_symbols(symbols, tables)
    assert len(data) % 4 == 0
    np.testing.assert_array_equal(decode_symbols(data, tables, (9, 7)), symbols)


def test_long_runs_of_one_symbol_compress_well():
    tables = random_tables(np.random.default_rng(1))
    symbols = np.zeros((16, 64, 64), np.int32)
    data = encode_symbols(symbols, tables)
    np.testing.assert_array_equal(decode_symbols(data, tables, (64, 64)), symbols)


def test_symbols_beyond_the_core_limit_are_rejected():
    tables = random_tables(np.random.default_rng(2))
    symbols = np.zeros((16, 2, 2), np.int32)
    symbols[3, 1, 1] = (1 << 30) + 5
    with pytest.raises(ValueError, match="out of range"):
        encode_symbols(symbols, tables)


def test_invalid_tables_are_rejected():
    tables = random_tables(np.random.default_rng(3))
    bad = tables.quantized_cdf.copy()
    bad[0, 1] = bad[0, 0]  # zero frequency
    with pytest.raises(ModelError):
        EntropyTables(bad, tables.cdf_length, tables.offset, tables.medians)
    with pytest.raises(ValueError, match="strictly increasing"):
        _rans.encode(np.zeros(16, np.int32), 1, bad, tables.cdf_length, tables.offset, bad.shape[1])


def test_channel_mismatch_is_a_clear_error():
    tables = random_tables(np.random.default_rng(4))
    with pytest.raises(RoiTrtError, match="15 channels, entropy tables 16"):
        encode_symbols(np.zeros((15, 2, 2), np.int32), tables)


def _mutations(data, rng, count):
    """Truncations, extensions, bit flips, word swaps and random streams (all multiples of 4 or not)."""
    for i in range(count):
        kind = i % 5
        b = bytearray(data)
        if kind == 0:
            b = b[: rng.integers(0, len(b))]
        elif kind == 1:
            b += bytes(rng.integers(0, 256, size=rng.integers(1, 9)).astype(np.uint8))
        elif kind == 2:
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(0, len(b))
                b[pos] ^= 1 << rng.integers(0, 8)
        elif kind == 3:
            j, k = rng.integers(0, len(b) // 4, size=2)
            b[4 * j: 4 * j + 4], b[4 * k: 4 * k + 4] = b[4 * k: 4 * k + 4], b[4 * j: 4 * j + 4]
        else:
            b = bytearray(rng.integers(0, 256, size=rng.integers(0, 2 * len(data))).astype(np.uint8))
        yield bytes(b)


def test_fuzz_decoder_never_crashes():
    """3000 seeded mutations straight into the rANS decoder (no checksum in front of it)."""
    rng = np.random.default_rng(1234)
    tables = random_tables(rng)
    symbols = rng.integers(-15, 45, size=(16, 8, 8)).astype(np.int32)
    data = encode_symbols(symbols, tables)
    outcomes = {"error": 0, "decoded": 0}
    for mutated in _mutations(data, rng, 3000):
        try:
            decode_symbols(mutated, tables, (8, 8))
            outcomes["decoded"] += 1
        except BitstreamError:
            outcomes["error"] += 1
    # The final-state and trailing-data checks reject nearly every corruption.
    assert outcomes["error"] > 2900, outcomes


def _numpy_peak(call):
    """-> (call's result, peak bytes of the Python and numpy allocations it made)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_entropy_coding_makes_no_array_as_large_as_the_latent():
    """The core takes each symbol's channel from its position: what coding a 4 MiB latent allocates is
    the stream (encode) or the decoded symbols (decode), nothing latent-sized besides (the channel index
    array once built for both was another 4 MiB)."""
    tables = random_tables(np.random.default_rng(5))
    symbols = np.random.default_rng(6).integers(-3, 4, size=(16, 256, 256)).astype(np.int32)
    data, encode_peak = _numpy_peak(lambda: encode_symbols(symbols, tables))
    decoded, decode_peak = _numpy_peak(lambda: decode_symbols(data, tables, (256, 256)))
    np.testing.assert_array_equal(decoded, symbols)
    assert encode_peak < len(data) + (256 << 10), (encode_peak, len(data))
    assert decode_peak < symbols.nbytes + (256 << 10), (decode_peak, symbols.nbytes)
