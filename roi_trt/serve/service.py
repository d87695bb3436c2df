"""The decode service without Triton: which streams a server accepts, their entropy decoding, and where
decoded frames go (torch-free; the Triton model in roi_trt.serve.triton_model is a thin shell over it).

A server holds several models and picks the one each stream names by its fingerprint; a stream of any
other model, a reference msgpack packet (it names no model), a stream longer than the server's limit or
than its own latent can hold, or an image larger than the server's pixel budget is refused before any
memory is spent on decoding it, with a one-line reason for that request alone. The pixel budget bounds
what one request can cost: entropy decoding, the latent and the decoded frame grow with the pixels, and
synthesis runs in tiles within the memory budget.
"""

import hashlib
import io
import json
import os
import re
import struct
import zlib
from collections import namedtuple

from .. import bitstream
from ..codec import StreamCoder
from ..errors import BitstreamError, ModelMismatchError, RoiTrtError
from ..spec import stream_fingerprint
from ..store import resolve

# The served models of a repository's `roi_decode` model, beside its model.py.
SERVED_MODELS = "served_models.json"
# A 4K frame (3840 x 2160): what a camera sends, so a request costs at most about four 1080p frames.
DEFAULT_MAX_PIXELS = 3840 * 2160
# The PNG text key under which DirectorySink records the SHA-256 of a frame's stream.
SINK_DIGEST_KEY = "roi-trt stream sha256"
_CAMERA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Limits = namedtuple("Limits", "max_stream_bytes max_pixels")


def request_limits(max_pixels=None, max_stream_bytes=None):
    """Limits, with the defaults: a 4K frame, and 4 bits per pixel of the pixel budget in bytes (far above
    any stream a learned codec sends at useful rates)."""
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    return Limits(max_stream_bytes or max_pixels // 2, max_pixels)


DEFAULT_LIMITS = request_limits()
# One decoded frame: which model, which camera and frame number the client named (or None), and the
# SHA-256 (hex) of the stream it was decoded from: what tells a frame sent again from a different one.
FrameInfo = namedtuple("FrameInfo", "model camera frame stream_sha256")


class RequestError(RoiTrtError):
    """This request is refused (malformed, foreign, too large, bad parameters); the server goes on."""


class SinkUnavailable(RoiTrtError):
    """The sink cannot store this frame now (a full disk, a path it cannot write): the server's trouble, so
    the client is told to send the frame again later instead of dropping it."""


def stream_sha256(data):
    """What identifies a frame's content: the SHA-256 (hex) of its .roi stream."""
    return hashlib.sha256(bytes(data)).hexdigest()


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
        height, width = bitstream.declared_size(data)  # before the stream is checked, copied or decoded
        if height * width > self.limits.max_pixels:
            raise RequestError("image of {}x{} is larger than this server accepts ({} pixels)".format(
                width, height, self.limits.max_pixels))
        try:
            header, payload = bitstream.unpack(data)
        except BitstreamError as exc:
            raise RequestError(str(exc)) from None
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

    def finish(self, served, rgb, camera=None, frame=None, digest=None):
        """A decoded uint8 HxWx3 frame, handed to the sink with the stream's `digest` (stream_sha256); -> rgb."""
        if self.sink is not None:
            self.sink(rgb, FrameInfo(served.name, camera, frame, digest))
        return rgb

    def decode(self, data, camera=None, frame=None):
        """.roi bytes -> uint8 HxWx3, synthesis in this process (the served model must have a codec)."""
        served, latent, crop = self.parse(data)
        rgb, _ = served.codec.synthesize_rgb8(latent, crop)
        return self.finish(served, rgb, camera, frame, stream_sha256(data))


def request_parameters(parameters):
    """(camera, frame) from a request's parameters (a dict), checked: a camera names a directory."""
    camera, frame = parameters.get("camera"), parameters.get("frame")
    if camera is not None and not (isinstance(camera, str) and _CAMERA.match(camera)):
        raise RequestError("camera must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    if frame is not None and not (isinstance(frame, int) and not isinstance(frame, bool) and 0 <= frame < 1 << 63):
        raise RequestError("frame must be a non-negative integer")
    return camera, frame


class DirectorySink(object):
    """Writes each decoded frame to DIR/<camera>/<frame>.png atomically, exactly once per (camera, frame).

    The PNG carries the SHA-256 of the stream it was decoded from in a tEXt chunk (`SINK_DIGEST_KEY`), so
    the image and what identifies its content are published together by one rename: no crash of the
    server leaves one without the other (a sidecar file would have such a window). A frame sent again
    whose stream the file already holds (its reply was lost: a timeout, a server killed after writing)
    is delivered, and the file is left as it is; a different stream under the same (camera, frame) is
    refused as a conflict; a file is never replaced. A failure to write is the server's trouble
    (SinkUnavailable: the camera keeps the frame and sends it again)."""

    def __init__(self, directory):
        from ..fileio import check_output

        check_output(directory, directory=True)  # the model fails to load, rather than every frame later
        self.directory = directory
        self._unnamed = 0

    def __call__(self, rgb, info):
        from ..errors import OutputExistsError
        from ..fileio import atomic_output

        if info.frame is None:
            self._unnamed += 1
            name = "{}-{:08d}.png".format(os.getpid(), self._unnamed)
        else:
            name = "{:012d}.png".format(info.frame)
        path = os.path.join(self.directory, info.camera or "default", name)
        try:
            if info.frame is not None and self._holds(path, info):
                return
            png = png_with_text(rgb, SINK_DIGEST_KEY, info.stream_sha256 or "")
            try:
                with atomic_output(path, replace=False) as tmp:
                    with open(tmp, "wb") as f:
                        f.write(png)
            except OutputExistsError:  # written meanwhile by a request for the same frame
                if info.frame is None or not self._holds(path, info):
                    raise RequestError("{} exists".format(path)) from None
        except OSError as exc:  # full disk, no permission: this frame fails, the server goes on
            raise SinkUnavailable("{}: cannot write ({})".format(path, exc.strerror or exc)) from None

    @staticmethod
    def _holds(path, info):
        """True if `path` holds this frame's stream, False if there is no such file; RequestError if it holds
        another stream."""
        held = png_text(path, SINK_DIGEST_KEY)
        if held is None:
            return False
        if info.stream_sha256 and held == info.stream_sha256:
            return True
        raise RequestError("frame {} of camera {} is already stored from another stream (SHA-256 {}, this one {}): "
                           "a camera's frame ids must not repeat".format(
                               info.frame, info.camera or "default", held[:16] or "unknown",
                               (info.stream_sha256 or "unknown")[:16]))


def png_with_text(rgb, key, value):
    """uint8 HxWx3 -> PNG bytes with a tEXt chunk `key`: `value` right after the header (where readers find
    it before any pixel data)."""
    from ..imageio import write_png

    buffer = io.BytesIO()
    write_png(rgb, buffer)
    png = buffer.getvalue()
    body = b"tEXt" + key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    end_of_header = 8 + 8 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:end_of_header] + chunk + png[end_of_header:]


def png_text(path, key):
    """The tEXt `key` of the PNG at `path` ("" if it has none), None if there is no such file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return str(image.info.get(key, ""))
    except FileNotFoundError:
        return None


def callback_sink(spec):
    """'module:function' -> that function, called as function(rgb, FrameInfo) for every decoded frame."""
    import importlib

    module, _, function = spec.partition(":")
    if not module or not function:
        raise RoiTrtError("sink callback must be 'module:function', got {!r}".format(spec))
    return getattr(importlib.import_module(module), function)
