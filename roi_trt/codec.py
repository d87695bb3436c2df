"""Image <-> `.roi` stream: a backend's transforms plus the rANS entropy coder (torch-free, Python 3.6).

Library use with frames in memory:

    with open_codec("demo", parts=("encoder",)) as codec:
        data, timing = codec.encode(rgb)          # uint8 HxWx3 -> .roi bytes
    with open_codec("demo", parts=("decoder",)) as codec:
        rgb, timing = codec.decode(data)          # .roi bytes (or a reference msgpack packet) -> uint8 HxWx3
"""

import time
from collections import namedtuple

from . import bitstream
from .backends import PARTS, open_backend
from .entropy import decode_latent, encode_latent
from .imageio import pad_to_multiple, resize, to_nchw, to_rgb8
from .store import resolve

Timing = namedtuple("Timing", "transform entropy")


class Codec(object):
    """A backend (the transforms of one resolved model) and that model's entropy tables."""

    def __init__(self, backend, tables):
        self.backend, self.tables = backend, tables
        self.model = backend.model
        self.downsampling = self.model.downsampling

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def code(self, x):
        """Padded float NCHW image -> (rANS payload, latent (h, w), Timing): the core the benchmarks time."""
        start = time.perf_counter()
        y = self.backend.analysis(x)[0]
        mid = time.perf_counter()
        payload = encode_latent(y, self.tables)
        return payload, y.shape[1:], Timing(mid - start, time.perf_counter() - mid)

    def reconstruct(self, payload, latent_hw):
        """rANS payload -> (float NCHW image of latent size x d, Timing)."""
        start = time.perf_counter()
        y_hat = decode_latent(payload, self.tables, latent_hw)
        mid = time.perf_counter()
        return self.backend.synthesis(y_hat[None]), Timing(time.perf_counter() - mid, mid - start)

    def encode(self, rgb, size=None):
        """uint8 HxWx3 -> (.roi bytes, Timing); `size`=(h, w) resizes first, as the paper's protocol does."""
        if size is not None:
            rgb = resize(rgb, size)
        height, width = rgb.shape[:2]
        payload, _, timing = self.code(pad_to_multiple(to_nchw(rgb), self.downsampling))
        header = bitstream.header_for(self.model.N, self.model.M, self.model.fingerprint, height, width)
        return bitstream.pack(header, payload), timing

    def decode(self, data):
        """.roi stream or reference msgpack packet -> (uint8 HxWx3, Timing)."""
        if bitstream.is_roi_stream(data):
            header, payload = bitstream.unpack(data)
            bitstream.check_model(header, self.model.N, self.model.M, self.model.fingerprint)
            latent_hw, crop = (header.latent_height, header.latent_width), (header.height, header.width)
        else:
            payload, latent_hw = bitstream.unpack_reference_packet(data, self.downsampling)
            crop = None
        x_hat, timing = self.reconstruct(payload, latent_hw)
        if crop is not None:
            x_hat = x_hat[..., : crop[0], : crop[1]]
        return to_rgb8(x_hat), timing


def open_codec(model=None, backend="auto", parts=PARTS, threads=None, device=None):
    """MODEL (anything `store.resolve` takes) + backend name -> Codec; `parts` limits what is loaded."""
    resolved = resolve(model)
    return Codec(open_backend(resolved, backend, parts, threads, device), resolved.entropy_tables())
