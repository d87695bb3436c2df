"""Image <-> `.roi` stream: a backend's transforms plus the rANS entropy coder (torch-free, Python 3.6).

Library use with frames in memory:

    with open_codec("demo", parts=("encoder",)) as codec:
        data, timing = codec.encode(rgb)          # uint8 HxWx3 -> .roi bytes
    with open_codec("demo", parts=("decoder",)) as codec:
        rgb, timing = codec.decode(data)          # .roi bytes (or a reference msgpack packet) -> uint8 HxWx3

Decoding converts the synthesis output to uint8 tile by tile (`synthesize_rgb8`): no float image of the
whole frame is made; `synthesize` gives the float image for those who want it.
"""

import math
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import bitstream
from .backends import open_backend
from .entropy import decode_latent, encode_latent, encode_symbols
from .errors import UsageError
from .imageio import pad_to_multiple, resize, to_nchw, to_rgb8
from .spec import PARTS
from .store import resolve
from .tiling import HALO, available_memory, run_tiled, stitch, tile_side

Timing = namedtuple("Timing", "transform entropy")
Frame = namedtuple("Frame", "x height width")  # padded float NCHW image, and the size before padding


# Working memory of a transform per full-resolution pixel and latent channel: peak RSS of one run less the
# process's own, measured with ONNX Runtime 1.32 on CPU for N = 128 at tiles of 32-90 latents (analysis
# 3.0-4.1 B, polyphase synthesis 4.0-4.1 B; the arena grows in steps), with a margin.
WORK_BYTES = {"encoder": 4.25, "decoder": 4.5}
# A decoder exported with `--deconv convtranspose` (or before the option): ONNX Runtime's column buffers
# (8.4-9.3 B measured the same way).
TRANSPOSED_DECODER_WORK_BYTES = 9.5
DEFAULT_MAX_MEMORY = 256 << 20


def default_max_memory():
    """256 MiB for the working memory of a frame's transform, less where a quarter of the free memory is less."""
    free = available_memory()
    return DEFAULT_MAX_MEMORY if free is None else min(DEFAULT_MAX_MEMORY, free // 4)


def work_bytes(model, part):
    """Working memory of `part`'s transform of `model` per full-resolution pixel and latent channel: the
    export's decoder form decides the decoder's."""
    if part == "decoder" and model.has_export() and model.manifest().get("deconv") != "polyphase":
        return TRANSPOSED_DECODER_WORK_BYTES
    return WORK_BYTES[part]


def check_max_memory(model, parts, max_memory):
    """Refuse a budget below what one tile of `parts` needs: a core of one latent with its halo on every
    side (a smaller one could only run more such tiles, each mostly halo, no less memory)."""
    d = model.downsampling
    need, part = max(((1 + 2 * HALO) ** 2 * d * d * model.N * work_bytes(model, p), p) for p in parts)
    if max_memory < need:
        raise UsageError("--max-memory of {} bytes is less than one tile of the ({}, {}) {} needs: at least {:.1f}M "
                         "(a core of one latent and a halo of {} on every side)".format(
                             max_memory, model.N, model.M, part, math.ceil(need * 10 / 2.0 ** 20) / 10, HALO))


def frames_that_fit(frames, max_memory):
    """At most `frames`, as many transforms of `max_memory` bytes as a quarter of the free memory holds (>= 1)."""
    free = available_memory()
    return frames if free is None else max(1, min(frames, free // 4 // max_memory))


class StreamCoder(object):
    """One model's `.roi` streams <-> quantized latents: its entropy tables and the header rules, no
    transforms (a server's entropy stage needs only this)."""

    def __init__(self, model, tables):
        self.model, self.tables = model, tables

    def encode(self, latent, height, width):
        """latent [N, h, w] of an image of height x width -> (.roi bytes, seconds of entropy coding)."""
        start = time.perf_counter()
        payload = encode_latent(latent, self.tables)
        header = bitstream.header_for(self.model.N, self.model.M, self.model.fingerprint, height, width)
        return bitstream.pack(header, payload), time.perf_counter() - start

    def median_stream(self, height, width):
        """The stream of a height x width image whose latent is every channel's median (all symbols 0): about
        the smallest stream of that size, so the cheapest request for the most pixels a server admits."""
        header = bitstream.header_for(self.model.N, self.model.M, self.model.fingerprint, height, width)
        symbols = np.zeros((self.model.N, header.latent_height, header.latent_width), np.int32)
        return bitstream.pack(header, encode_symbols(symbols, self.tables))

    def parse(self, data):
        """.roi stream or reference msgpack packet -> (dequantized latent [1, N, h, w], crop (h, w) or None, seconds)."""
        start = time.perf_counter()
        if bitstream.is_roi_stream(data):
            latent, crop = self.decode_unpacked(*bitstream.unpack(data))
        else:
            payload, latent_hw = bitstream.unpack_reference_packet(data, self.model.downsampling)
            latent, crop = decode_latent(payload, self.tables, latent_hw)[None], None
        return latent, crop, time.perf_counter() - start

    def decode_unpacked(self, header, payload):
        """A `.roi` stream already unpacked (bitstream.unpack) -> (dequantized latent [1, N, h, w], crop (h, w))."""
        bitstream.check_model(header, self.model.N, self.model.M, self.model.fingerprint)
        latent = decode_latent(payload, self.tables, (header.latent_height, header.latent_width))
        return latent[None], (header.height, header.width)


class Codec(object):
    """A backend (the transforms of one resolved model) and that model's entropy tables.

    Images whose transform would need more working memory than `max_memory` bytes are processed in
    overlapping tiles (roi_trt.tiling) with the same result; None means the backend's device budget (a
    GPU's own memory) or else `default_max_memory()`; a TensorRT engine tiles by its profile instead. Where the
    backend runs `frames` > 1 side by side, every run goes through a pool of that many threads, so small
    frames (each from its own caller thread) and the tiles of a large one share the cores alike; each
    run keeps its own budget, so tiles and streams do not depend on how many run at once.
    """

    def __init__(self, backend, tables, max_memory=None):
        self.backend, self.tables = backend, tables
        self.model = backend.model
        self.streams = StreamCoder(self.model, tables)
        self.downsampling = self.model.downsampling
        self.max_memory = max_memory or backend.memory_budget() or default_max_memory()
        self._pool = ThreadPoolExecutor(backend.frames) if backend.frames > 1 else None
        self.work_bytes = {part: work_bytes(self.model, part) for part in PARTS}  # decided once, not per image

    def _pieces(self, part):
        """((rows, cols) of the largest latent that runs in one piece, (rows, cols) of a tile's core) in latent
        units for `part`: an engine's largest input (its context holds the memory for that already: a 1080p
        frame on a server engine runs whole, no halo FLOPs) and that less the halo, else a square within the
        working-memory budget for both."""
        largest = self.backend.largest_input(part)
        if largest is not None:
            return largest[1:], (max(1, largest[1] - 2 * HALO), max(1, largest[2] - 2 * HALO))
        d = self.downsampling
        side = tile_side(self.max_memory, d * d * self.model.N * self.work_bytes[part])
        return (side, side), (side, side)

    def tile_latents(self, part):
        """Core (rows, cols) of a tile in latent units for `part` (see `_pieces`)."""
        return self._pieces(part)[1]

    def _transform(self, part, x, scale_in, scale_out, out_channels, keep=None):
        """`part`'s transform of NCHW x -> its float NCHW output; or, with `keep`, each piece of the output
        handed to keep(rows, cols, piece) as run_tiled does (the whole output, or past the memory budget
        each tile's core) and None returned."""
        run = self.backend.analysis if part == "encoder" else self.backend.synthesis
        h, w = x.shape[-2] // scale_in, x.shape[-1] // scale_in
        whole, core = self._pieces(part)
        if self.model.fixed_shape is not None or (h <= whole[0] and w <= whole[1]):
            out = run(x) if self._pool is None else self._pool.submit(run, x).result()
            if keep is None:
                return out
            keep((0, out.shape[2]), (0, out.shape[3]), out)
            return None
        out = None
        if keep is None:
            out = np.empty((x.shape[0], out_channels, h * scale_out, w * scale_out), np.float32)
            keep = stitch(out)
        run_tiled(run, x, scale_in, scale_out, core, keep, self._pool, self.backend.frames)
        return out

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # The stages of encode and decode, separately callable so a pipeline can overlap them
    # (files.run_batch): preparation and entropy coding run beside the transforms.
    def prepare(self, rgb, size=None):
        """uint8 HxWx3 -> Frame with the padded float NCHW image; `size`=(h, w) resizes first (the paper's protocol)."""
        if size is not None:
            rgb = resize(rgb, size)
        bitstream.check_image_size(rgb.shape[0], rgb.shape[1])  # before the transform: a stream could not hold it
        return Frame(pad_to_multiple(to_nchw(rgb), self.downsampling), rgb.shape[0], rgb.shape[1])

    def analyze(self, frame):
        """Frame -> (latent [N, h, w], seconds)."""
        start = time.perf_counter()
        latent = self._transform("encoder", frame.x, self.downsampling, 1, self.model.N)[0]
        return latent, time.perf_counter() - start

    def finish_encode(self, frame, latent):
        """Frame and its latent -> (.roi bytes, seconds of entropy coding)."""
        return self.streams.encode(latent, frame.height, frame.width)

    def parse(self, data):
        """.roi stream or reference msgpack packet -> (dequantized latent [1, N, h, w], crop (h, w) or None, seconds)."""
        return self.streams.parse(data)

    def synthesize(self, latent):
        """Dequantized latent [1, N, h, w] -> (float NCHW image, seconds)."""
        start = time.perf_counter()
        return self._transform("decoder", latent, 1, self.downsampling, 3), time.perf_counter() - start

    def synthesize_rgb8(self, latent, crop=None):
        """Dequantized latent [1, N, h, w] -> (uint8 HxWx3 cropped to `crop` (h, w) if given, seconds): each
        tile's core is converted into its place as soon as it is done, so the float output never exists
        at full size. Equal to finish_decode(synthesize(latent)[0], crop)."""
        start = time.perf_counter()
        d, (h, w) = self.downsampling, latent.shape[2:]
        height, width = crop or (h * d, w * d)
        if not ((h - 1) * d < height <= h * d and (w - 1) * d < width <= w * d):  # every pixel written, once
            raise ValueError("crop {}x{} does not match a latent of {}x{}".format(width, height, w, h))
        rgb = np.empty((height, width, 3), np.uint8)

        def keep(rows, cols, core):
            r0, r1, c0, c1 = rows[0], min(rows[1], height), cols[0], min(cols[1], width)
            to_rgb8(core[:, :, : r1 - r0, : c1 - c0], out=rgb[r0:r1, c0:c1])

        self._transform("decoder", latent, 1, d, 3, keep)
        return rgb, time.perf_counter() - start

    @staticmethod
    def finish_decode(x_hat, crop):
        """Float NCHW image -> uint8 HxWx3, cropped to the encoded image's size."""
        if crop is not None:
            x_hat = x_hat[..., : crop[0], : crop[1]]
        return to_rgb8(x_hat)

    def encode(self, rgb, size=None):
        """uint8 HxWx3 -> (.roi bytes, Timing)."""
        frame = self.prepare(rgb, size)
        latent, transform = self.analyze(frame)
        data, entropy = self.finish_encode(frame, latent)
        return data, Timing(transform, entropy)

    def decode(self, data):
        """.roi stream or reference msgpack packet -> (uint8 HxWx3, Timing)."""
        latent, crop, entropy = self.parse(data)
        rgb, transform = self.synthesize_rgb8(latent, crop)
        return rgb, Timing(transform, entropy)


def open_codec(model=None, backend="auto", parts=PARTS, threads=None, device=None, max_memory=None, frames=1):
    """MODEL (anything `store.resolve` takes) + backend name -> Codec; `parts` limits what is loaded;
    `frames`: how many frames the caller could transform at once (see `Backend`), as many as fit in
    memory with `max_memory` each."""
    resolved = resolve(model)
    if max_memory is not None:
        check_max_memory(resolved, parts, max_memory)
    frames = frames_that_fit(frames, max_memory or default_max_memory())
    return Codec(open_backend(resolved, backend, parts, threads, device, frames), resolved.entropy_tables(), max_memory)
