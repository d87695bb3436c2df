"""The `.roi` stream, and the reference implementation's msgpack packets (torch-free, Python 3.6).

`.roi` layout, little-endian, 38-byte header then the payload:

    offset size  field
    0      4     magic b"ROIc"
    4      1     format version (1)
    5      1     flags (0, reserved)
    6      2     N, latent channels
    8      1     M, hidden layers
    9      1     reserved (0)
    10     8     model fingerprint: first 8 bytes of the SHA-256 in the export's manifest
    18     4     image height (pixels, before padding)
    22     4     image width
    26     2     latent height = ceil(height / 2^(M+2))
    28     2     latent width
    30     4     payload length in bytes
    34     4     CRC-32 of bytes 0..33 followed by the payload
    38     ...   payload: CompressAI-compatible rANS words

Everything is validated before any allocation that depends on it.
"""

import struct
import zlib
from collections import namedtuple

from .errors import BitstreamError, ModelMismatchError
from .spec import latent_size, stream_fingerprint

MAGIC = b"ROIc"
VERSION = 1
_HEADER = struct.Struct("<4sBBHBB8sIIHHI")
_CRC = struct.Struct("<I")
_IMAGE_SIZE = struct.Struct("<II")
HEADER_SIZE = _HEADER.size + _CRC.size
MAX_PIXELS = 1 << 26  # 64 MP (e.g. 8192 x 8192): bounds the latent a stream can make us allocate
MAX_SIDE = 1 << 15
# The most a latent value can cost in the rANS core: 16 bits in range, or a bypass count nibble and up
# to eight raw nibbles on top; plus the 64-bit final state and one word of rounding per stream.
MAX_SYMBOL_BITS = 16 + 4 + 32

StreamHeader = namedtuple("StreamHeader", "N M fingerprint height width latent_height latent_width")


def check_image_size(height, width):
    """Refuse an image a `.roi` stream cannot hold, naming the limit it breaks."""
    if height <= 0 or width <= 0:
        raise BitstreamError("image size {}x{} is empty".format(width, height))
    if max(height, width) > MAX_SIDE:
        raise BitstreamError("image size {}x{}: a side over {} pixels, the .roi format's limit".format(
            width, height, MAX_SIDE))
    if height * width > MAX_PIXELS:
        raise BitstreamError("image size {}x{}: {} pixels, over the .roi format's limit of {} ({} MP)".format(
            width, height, height * width, MAX_PIXELS, MAX_PIXELS >> 20))


def header_for(N, M, fingerprint_hex, height, width):
    """The header of an image of height x width coded by model (N, M) with that SHA-256 fingerprint."""
    return StreamHeader(N, M, stream_fingerprint(fingerprint_hex), height, width, *latent_size(height, width, M))


def pack(header, payload):
    check_image_size(header.height, header.width)
    head = _HEADER.pack(
        MAGIC, VERSION, 0, header.N, header.M, 0, header.fingerprint, header.height, header.width,
        header.latent_height, header.latent_width, len(payload),
    )
    crc = zlib.crc32(payload, zlib.crc32(head)) & 0xFFFFFFFF
    return head + _CRC.pack(crc) + payload


def max_payload_bytes(N, latent_height, latent_width):
    """The largest payload a latent of that size can have: anything longer is not a stream of it."""
    return (MAX_SYMBOL_BITS * N * latent_height * latent_width + 7) // 8 + 12


def is_roi_stream(data):
    return data[:4] == MAGIC


def declared_size(data):
    """(height, width) the header of `.roi` data declares (offsets 18 and 22), (0, 0) if it is too short to
    hold one: read before anything else is checked or copied, so a server can hold it against its budget
    first."""
    if len(data) < _HEADER.size:
        return 0, 0
    return _IMAGE_SIZE.unpack_from(data, 18)


def unpack(data):
    """-> (StreamHeader, payload); raises BitstreamError on anything malformed."""
    if len(data) < HEADER_SIZE:
        raise BitstreamError("truncated stream ({} bytes, header needs {})".format(len(data), HEADER_SIZE))
    fields = _HEADER.unpack_from(data)
    magic, version, flags, N, M, reserved, fingerprint, height, width, lh, lw, length = fields
    if magic != MAGIC:
        raise BitstreamError("not a .roi stream")
    if version != VERSION:
        raise BitstreamError("unsupported .roi version {}".format(version))
    if flags != 0:
        raise BitstreamError("unsupported .roi flags {:#x}".format(flags))
    if reserved != 0:
        raise BitstreamError("reserved header byte is {:#x}, not 0: not a stream of this .roi version".format(reserved))
    if length != len(data) - HEADER_SIZE:
        raise BitstreamError(
            "payload length {} does not match the {} bytes present".format(length, len(data) - HEADER_SIZE)
        )
    if length > max_payload_bytes(N, lh, lw):
        raise BitstreamError("payload of {} bytes is more than a {}x{}x{} latent can hold".format(length, N, lh, lw))
    (crc,) = _CRC.unpack_from(data, _HEADER.size)
    payload = bytes(data[HEADER_SIZE:])
    if zlib.crc32(payload, zlib.crc32(bytes(data[: _HEADER.size]))) & 0xFFFFFFFF != crc:
        raise BitstreamError("checksum mismatch: the stream is corrupt")
    check_image_size(height, width)
    if not 0 <= M <= 8 or (lh, lw) != latent_size(height, width, M):
        raise BitstreamError("inconsistent sizes in header")
    return StreamHeader(N, M, fingerprint, height, width, lh, lw), payload


def check_model(header, N, M, fingerprint_hex):
    """Refuse to decode with a model other than the one that encoded."""
    if (header.N, header.M) != (N, M) or header.fingerprint != stream_fingerprint(fingerprint_hex):
        raise ModelMismatchError(
            "stream was encoded by model ({}, {}) {} but this model is ({}, {}) {}: decode with the encoding model".format(
                header.N, header.M, header.fingerprint.hex(), N, M, fingerprint_hex[:16]
            )
        )


def unpack_reference_packet(data, downsampling):
    """The reference coder's msgpack packet -> (rANS string, (latent h, w)).

    The packet holds no image size, fingerprint or checksum: the image comes out at latent size x 2^(M+2)
    and the model cannot be verified.
    """
    import msgpack

    try:
        packet = msgpack.unpackb(
            bytes(data), raw=False, max_bin_len=len(data), max_array_len=16, max_map_len=16, max_str_len=64
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise BitstreamError("neither a .roi stream nor a reference msgpack packet ({})".format(exc)) from None
    if not isinstance(packet, dict) or set(packet) != {"latent", "shape"}:
        raise BitstreamError("msgpack data is not a reference packet (expected keys 'latent' and 'shape')")
    latent, shape = packet["latent"], packet["shape"]
    if not (isinstance(latent, list) and len(latent) == 1 and isinstance(latent[0], bytes)):
        raise BitstreamError("reference packet must hold exactly one latent string")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(v, int) for v in shape)):
        raise BitstreamError("reference packet has an invalid latent shape {!r}".format(shape))
    check_image_size(shape[0] * downsampling, shape[1] * downsampling)
    return latent[0], (shape[0], shape[1])


def pack_reference_packet(string, latent_hw):
    """What the reference coder writes (used to test compatibility)."""
    import msgpack

    return msgpack.packb({"latent": [string], "shape": list(latent_hw)}, use_bin_type=True)
