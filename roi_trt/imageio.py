"""Image files <-> float32 NCHW RGB arrays in [0, 1] (torch-free, Python 3.6)."""

import functools
import io
import zlib

import numpy as np
from PIL import Image, ImageOps

from .errors import RoiTrtError

# What directories and globs are expanded to (any file PIL opens is accepted when named directly).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@functools.lru_cache(maxsize=None)
def _imagecodecs():
    """imagecodecs (libpng), or None where it is absent (Python 3.6)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def write_png(rgb, f, library=None):
    """uint8 HxWx3 -> PNG into the binary file `f`, losslessly and fast: libpng through imagecodecs (the Up
    filter, Huffman-only deflate) or Pillow (level 1, Huffman-only); `library` None takes imagecodecs
    where it is installed (Python 3.8+). Pillow filters every row adaptively, which on 2 cores took
    longer than the synthesis leaves a decode pipeline (benchmarks/throughput.py times both)."""
    codecs = _imagecodecs()
    if (codecs is not None) if library is None else library == "imagecodecs":
        # C order in memory it owns, else a copy: libpng refuses a view's strides (a 1x1 image reversed
        # counts as contiguous)
        f.write(codecs.png_encode(np.require(rgb, np.uint8, "CO"), level=1, strategy=zlib.Z_HUFFMAN_ONLY,
                                  filter=codecs.PNG.FILTER.UP))
    else:
        Image.fromarray(rgb).save(f, format="PNG", compress_level=1, compress_type=zlib.Z_HUFFMAN_ONLY)


def _pillow_writer(pil_format, **options):
    return lambda rgb, f: Image.fromarray(rgb).save(f, format=pil_format, **options)


# Decoded images: output suffix -> writer(uint8 HxWx3, binary file). JPEG at 95 with full chroma and
# lossless WebP add as little loss as possible to an already lossy image.
IMAGE_WRITERS = {
    ".png": write_png,
    ".jpg": _pillow_writer("JPEG", quality=95, subsampling=0),
    ".jpeg": _pillow_writer("JPEG", quality=95, subsampling=0),
    ".webp": _pillow_writer("WEBP", lossless=True),
    ".tif": _pillow_writer("TIFF"),
    ".tiff": _pillow_writer("TIFF"),
}


def load_rgb(path):
    """-> (uint8 HxWx3 array, note or None); EXIF orientation applied, any PIL mode converted to RGB."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RoiTrtError("{}: no such file".format(path)) from None
    except OSError as exc:
        raise RoiTrtError("{}: {}".format(path, exc.strerror)) from None
    return decode_rgb(data, path)


# PNG chunks that neither libpng nor Pillow apply to the pixels: a PNG of only these reads the same by both.
# Text chunks are not among them (Pillow takes EXIF orientation from them), nor tRNS (libpng adds alpha).
_PLAIN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"iCCP", b"pHYs", b"sBIT", b"bKGD", b"tIME"}


def _plain_png(data):
    """True for a PNG made only of _PLAIN_PNG_CHUNKS, each outside IDAT with its CRC right (libpng
    would only warn on stderr where Pillow refuses the file)."""
    pos = 8
    while pos + 12 <= len(data):
        length, kind = int.from_bytes(data[pos: pos + 4], "big"), data[pos + 4: pos + 8]
        end = pos + 12 + length
        if kind not in _PLAIN_PNG_CHUNKS or end > len(data):
            return False
        if kind != b"IDAT" and zlib.crc32(data[pos + 4: end - 4]) != int.from_bytes(data[end - 4: end], "big"):
            return False
        if kind == b"IEND":
            return True
        pos = end
    return False


def _png_rgb8_size(data):
    """(height, width) from the IHDR of an 8-bit RGB PNG the libpng path reads (always the first chunk: bit
    depth 8, colour type 2 (truecolour), not interlaced, for which libpng would warn on stderr); None for
    any other input, which Pillow then reads (conversions, EXIF orientation, its error messages)."""
    if _imagecodecs() is None or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" \
            or data[24:26] != b"\x08\x02" or data[28:29] != b"\x00":
        return None
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def _png_rgb8(data, size):
    """An 8-bit RGB PNG of plain chunks (the common case) of `size` through libpng, faster than Pillow's
    decoder (benchmarks/throughput.py times both); None where Pillow should read it."""
    if not _plain_png(data):
        return None
    try:
        rgb = _imagecodecs().png_decode(data)
    except Exception:  # imagecodecs raises its own error types: let Pillow say what is wrong
        return None
    return rgb if rgb.shape == size + (3,) and rgb.dtype == np.uint8 else None


def _check_size(name, size, check_size):
    """Refuse an image from its header, before a pixel is decoded: over Pillow's decompression-bomb limit
    (PIL.Image.MAX_IMAGE_PIXELS, which Pillow itself only warns about up to twice that), or refused by
    `check_size(height, width)`."""
    height, width = size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and height * width > limit:
        raise RoiTrtError("{}: image size {}x{}: {} pixels, over Pillow's decompression-bomb limit of {} "
                          "(PIL.Image.MAX_IMAGE_PIXELS)".format(name, width, height, height * width, limit))
    if check_size is not None:
        try:
            check_size(height, width)
        except RoiTrtError as exc:
            raise RoiTrtError("{}: {}".format(name, exc)) from None


def decode_rgb(data, name, library=None, check_size=None):
    """Encoded image bytes (any format PIL reads) -> (uint8 HxWx3 array, note or None), as `load_rgb`;
    `library` "pillow" reads even 8-bit RGB PNGs with Pillow. `check_size(height, width)`, if given, is
    called with the size in the file's header before any pixel is decoded, and raises to refuse it."""
    size = _png_rgb8_size(data) if library != "pillow" else None
    if size is not None:
        _check_size(name, size, check_size)
        rgb = _png_rgb8(data, size)
        if rgb is not None:
            return rgb, None
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_size(name, (img.height, img.width), check_size)
            img = ImageOps.exif_transpose(img)
            note = None
            if img.mode != "RGB":
                note = "converted {} to RGB".format(img.mode)
                img = _to_rgb(img)
            return np.asarray(img, dtype=np.uint8).copy(), note
    except Image.UnidentifiedImageError:  # its message names our in-memory buffer
        raise RoiTrtError("{}: not an image (no format Pillow reads)".format(name)) from None
    except Image.DecompressionBombError:
        raise RoiTrtError("{}: over twice Pillow's decompression-bomb limit of {} pixels "
                          "(PIL.Image.MAX_IMAGE_PIXELS)".format(name, Image.MAX_IMAGE_PIXELS)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RoiTrtError("{}: cannot read image ({})".format(name, exc)) from None


def _to_rgb(img):
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bit instead of clipping (PIL's convert("RGB") clips at 255).
        wide = np.asarray(img, dtype=np.float64)
        top = 65535.0 if wide.max() > 255 else 255.0
        img = Image.fromarray(np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def resize(rgb, size):
    """Antialiased resize of a uint8 HxWx3 array to (height, width), as in the paper's protocol."""
    height, width = size
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC, reducing_gap=None))


BAND_ROWS = 64  # image rows converted at a time: float temporaries stay a few MB at any width


def to_nchw(rgb):
    """uint8 HxWx3 -> float32 1x3xHxW in [0, 1] (x / 255, as the reference), without float temporaries."""
    out = np.empty((1, 3) + rgb.shape[:2], np.float32)
    for c in range(3):
        out[0, c] = rgb[..., c]
    return np.divide(out, 255.0, out=out)


def to_rgb8(nchw, out=None):
    """float NCHW in [0, 1] (first image) -> uint8 HxWx3, rounded and clipped, a band of rows at a time
    (into `out`, e.g. a tile's place in a larger image, if given)."""
    _, _, height, width = nchw.shape
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    for r in range(0, height, BAND_ROWS):
        band = nchw[0, :, r: r + BAND_ROWS].transpose(1, 2, 0) * 255.0
        out[r: r + BAND_ROWS] = np.clip(np.rint(band, out=band), 0, 255, out=band)
    return out


def pad_to_multiple(x, multiple):
    """Replicate the bottom/right edges of NCHW `x` up to multiples of `multiple`.

    The transforms downsample by 2^(M+2); edge replication (unlike zeros) adds no artificial
    border for the codec to spend bits on. The decoder output is cropped back to the input size.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
