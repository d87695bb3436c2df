"""The decode service without Triton: which streams a server accepts, their entropy decoding, and where
decoded frames go (torch-free; the Triton model in roi_trt.serve.triton_model is a thin shell over it).

A server holds several models and picks the one each stream names by its fingerprint; a stream of any
other model, a reference msgpack packet (it names no model), a stream longer than the server's limit or
than its own latent can hold, or an image larger than the server's pixel limit is refused before any
memory is spent on decoding it, with a one-line reason for that request alone.
"""

import json
import os
import re
from collections import namedtuple

from .. import bitstream
from ..codec import Codec, StreamCoder
from ..errors import BitstreamError, ModelMismatchError, RoiTrtError
from ..spec import stream_fingerprint
from ..store import resolve

# The served models of a repository's `roi_decode` model, beside its model.py.
SERVED_MODELS = "served_models.json"
# A 64 MP image at 4 bits per pixel: far above any stream a learned codec sends at useful rates.
DEFAULT_MAX_STREAM_BYTES = 32 << 20
_CAMERA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Limits = namedtuple("Limits", "max_stream_bytes max_pixels")
DEFAULT_LIMITS = Limits(DEFAULT_MAX_STREAM_BYTES, bitstream.MAX_PIXELS)
# One decoded frame: which model, which camera and frame number the client named (or None).
FrameInfo = namedtuple("FrameInfo", "model camera frame")


class RequestError(RoiTrtError):
    """This request is refused (malformed, foreign, too large, bad parameters); the server goes on."""


def model_name(label):
    """A Triton model name (letters, digits, '_' and '-') from a model label."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_") or "model"


class ServedModel(object):
    """One model a server decodes: its stream coder and, when synthesis runs in this process, its codec."""

    def __init__(self, name, export_dir, synthesis_model=None, codec=None):
        self.name, self.export_dir, self.synthesis_model = name, export_dir, synthesis_model
        self.resolved = resolve(export_dir)
        self.streams = StreamCoder(self.resolved, self.resolved.entropy_tables())
        self.codec = codec

    @property
    def describe(self):
        m = self.resolved
        return "{} ({}, {}) {}".format(self.name, m.N, m.M, m.fingerprint[:16])


def read_served_models(directory):
    """[{name, export, synthesis}] from a `roi_decode` version directory's SERVED_MODELS file."""
    with open(os.path.join(directory, SERVED_MODELS), encoding="utf-8") as f:
        return json.load(f)["models"]


class DecodeService(object):
    """Streams of several models -> decoded frames, each request judged on its own.

    `models` are ServedModels; `sink` (optional) is called with (uint8 HxWx3, FrameInfo) for every
    decoded frame.
    """

    def __init__(self, models, limits=DEFAULT_LIMITS, sink=None):
        self.limits, self.sink = limits, sink
        self.by_fingerprint = {}
        for served in models:
            key = stream_fingerprint(served.resolved.fingerprint)
            if key in self.by_fingerprint:
                raise RoiTrtError("{} and {} are the same model".format(self.by_fingerprint[key].name, served.name))
            self.by_fingerprint[key] = served

    def close(self):
        for served in self.by_fingerprint.values():
            if served.codec is not None:
                served.codec.close()

    def _unpack(self, data):
        """-> (ServedModel, header, payload), the stream checked against this server's limits and models."""
        if len(data) > self.limits.max_stream_bytes:
            raise RequestError("stream of {} bytes is larger than this server accepts ({} bytes)".format(
                len(data), self.limits.max_stream_bytes))
        if not bitstream.is_roi_stream(data):
            raise RequestError("not a .roi stream (this server decodes only .roi streams, which name their model)")
        try:
            header, payload = bitstream.unpack(data)
        except BitstreamError as exc:
            raise RequestError(str(exc)) from None
        if header.height * header.width > self.limits.max_pixels:
            raise RequestError("image of {}x{} is larger than this server accepts ({} pixels)".format(
                header.width, header.height, self.limits.max_pixels))
        served = self.by_fingerprint.get(header.fingerprint)
        if served is None:
            raise RequestError("stream of model ({}, {}) {} is not served here (this server decodes {})".format(
                header.N, header.M, header.fingerprint.hex(),
                ", ".join(sorted(s.describe for s in self.by_fingerprint.values()))))
        return served, header, payload

    def parse(self, data):
        """.roi bytes -> (ServedModel, dequantized latent [1, N, h, w], crop (h, w)); RequestError if refused."""
        served, header, payload = self._unpack(data)
        try:
            latent, crop = served.streams.decode_unpacked(header, payload)
        except (BitstreamError, ModelMismatchError) as exc:
            raise RequestError(str(exc)) from None
        return served, latent, crop

    def finish(self, served, x_hat, crop, camera=None, frame=None):
        """Synthesized float NCHW image -> uint8 HxWx3 at the encoded size, handed to the sink."""
        rgb = Codec.finish_decode(x_hat, crop)
        if self.sink is not None:
            self.sink(rgb, FrameInfo(served.name, camera, frame))
        return rgb

    def decode(self, data, camera=None, frame=None):
        """.roi bytes -> uint8 HxWx3, synthesis in this process (the served model must have a codec)."""
        served, latent, crop = self.parse(data)
        x_hat, _ = served.codec.synthesize(latent)
        return self.finish(served, x_hat, crop, camera, frame)


def request_parameters(parameters):
    """(camera, frame) from a request's parameters (a dict), checked: a camera names a directory."""
    camera, frame = parameters.get("camera"), parameters.get("frame")
    if camera is not None and not (isinstance(camera, str) and _CAMERA.match(camera)):
        raise RequestError("camera must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    if frame is not None and not (isinstance(frame, int) and not isinstance(frame, bool) and 0 <= frame < 1 << 63):
        raise RequestError("frame must be a non-negative integer")
    return camera, frame


class DirectorySink(object):
    """Writes each decoded frame to DIR/<camera>/<frame>.png atomically, never replacing a file: a frame
    number sent twice is refused rather than overwriting the first."""

    def __init__(self, directory):
        self.directory = directory
        self._unnamed = 0

    def __call__(self, rgb, info):
        from ..fileio import atomic_output
        from ..imageio import write_png

        if info.frame is None:
            self._unnamed += 1
            name = "{}-{:08d}.png".format(os.getpid(), self._unnamed)
        else:
            name = "{:012d}.png".format(info.frame)
        path = os.path.join(self.directory, info.camera or "default", name)
        try:
            with atomic_output(path, replace=False) as tmp:
                with open(tmp, "wb") as f:
                    write_png(rgb, f)
        except RoiTrtError as exc:
            raise RequestError(str(exc)) from None
        except OSError as exc:  # full disk, no permission: this frame fails, the server goes on
            raise RequestError("{}: cannot write ({})".format(path, exc.strerror or exc)) from None


def callback_sink(spec):
    """'module:function' -> that function, called as function(rgb, FrameInfo) for every decoded frame."""
    import importlib

    module, _, function = spec.partition(":")
    if not module or not function:
        raise RoiTrtError("sink callback must be 'module:function', got {!r}".format(spec))
    return getattr(importlib.import_module(module), function)
