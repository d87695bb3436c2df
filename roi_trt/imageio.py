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
def _libpng():
    """imagecodecs' PNG encoder and its Up filter, or None where imagecodecs is absent (Python 3.6)."""
    try:
        from imagecodecs import PNG, png_encode
    except ImportError:
        return None
    return png_encode, PNG.FILTER.UP


def write_png(rgb, f, library=None):
    """uint8 HxWx3 -> PNG into the binary file `f`, losslessly and fast: libpng through imagecodecs (the Up
    filter, Huffman-only deflate) or Pillow (level 1, Huffman-only); `library` None takes imagecodecs
    where it is installed (Python 3.8+). Pillow filters every row adaptively, which on 2 cores took
    longer than the synthesis leaves a decode pipeline (benchmarks/throughput.py times both)."""
    if (_libpng() is not None) if library is None else library == "imagecodecs":
        png_encode, up = _libpng()
        # a fresh C-order copy: libpng refuses a view's strides (a 1x1 image reversed counts as contiguous)
        f.write(png_encode(np.array(rgb, np.uint8, order="C"), level=1, strategy=zlib.Z_HUFFMAN_ONLY, filter=up))
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


def decode_rgb(data, name):
    """Encoded image bytes (any format PIL reads) -> (uint8 HxWx3 array, note or None), as `load_rgb`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            note = None
            if img.mode != "RGB":
                note = "converted {} to RGB".format(img.mode)
                img = _to_rgb(img)
            return np.asarray(img, dtype=np.uint8).copy(), note
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
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


def to_nchw(rgb):
    return (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def to_rgb8(nchw):
    return np.clip(np.rint(nchw[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


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
