"""Traditional anonymization, the baselines our single-pass codec replaces (torch-free, Python 3.6).

Anonymize-then-compress: find the faces on the original (a face detector, or the ground-truth head
boxes), anonymize those regions, then compress with a classic codec. The two operations are the
traditional ones of Hukkelås & Lindseth (2023):

- mask-out: `I * (1 - M) + 127 * M` (the region set to 127 in every channel);
- Gaussian blur inside the region, sigma 7, kernel size 3 sigma (21 taps), separable; the region is
  blurred with its surroundings as context (the image edge replicated), then pasted back.

Boxes are [x0, y0, x1, y1] floats (x1, y1 exclusive), widened to whole pixels and clipped.
"""

import math

import numpy as np

from .methods import Method

BASELINES = ("blur", "maskout")
MASK_VALUE = 127
SIGMA = 7.0


def pixel_box(box, height, width):
    """[x0, y0, x1, y1] floats -> whole-pixel (x0, y0, x1, y1) covering the box, clipped; None if empty."""
    x0, y0 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x1, y1 = min(width, int(math.ceil(box[2]))), min(height, int(math.ceil(box[3])))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def gaussian_kernel(sigma, size=None):
    """Normalized 1-D Gaussian; size defaults to 3 sigma rounded to the next odd number (sigma 7: 21)."""
    size = int(size or int(round(3 * sigma)) // 2 * 2 + 1)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _convolve_axis(a, kernel, axis):
    """Valid 1-D correlation of float array `a` with `kernel` along `axis` (a weighted sum of shifts)."""
    n = a.shape[axis] - len(kernel) + 1
    out = np.zeros(a.shape[:axis] + (n,) + a.shape[axis + 1:], dtype=np.float64)
    for i, w in enumerate(kernel):
        index = [slice(None)] * a.ndim
        index[axis] = slice(i, i + n)
        out += w * a[tuple(index)]
    return out


def blur_regions(rgb, boxes, sigma=SIGMA, size=None):
    """Copy of uint8 HxWx3 `rgb` with every box Gaussian-blurred (context from around the box)."""
    out = np.array(rgb, copy=True)
    kernel = gaussian_kernel(sigma, size)
    r = len(kernel) // 2
    height, width = rgb.shape[:2]
    padded = None
    for box in boxes:
        p = pixel_box(box, height, width)
        if p is None:
            continue
        if padded is None:  # edge-replicated once, so boxes at the border have context too
            padded = np.pad(rgb, ((r, r), (r, r), (0, 0)), mode="edge").astype(np.float64)
        x0, y0, x1, y1 = p
        window = padded[y0:y1 + 2 * r, x0:x1 + 2 * r]  # the box plus r pixels of context on each side
        blurred = _convolve_axis(_convolve_axis(window, kernel, 0), kernel, 1)
        out[y0:y1, x0:x1] = np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    return out


def mask_regions(rgb, boxes, value=MASK_VALUE):
    """Copy of uint8 HxWx3 `rgb` with every box set to `value`."""
    out = np.array(rgb, copy=True)
    for box in boxes:
        p = pixel_box(box, rgb.shape[0], rgb.shape[1])
        if p is not None:
            out[p[1]:p[3], p[0]:p[2]] = value
    return out


def anonymize(rgb, boxes, mode, sigma=SIGMA):
    if mode == "blur":
        return blur_regions(rgb, boxes, sigma)
    if mode == "maskout":
        return mask_regions(rgb, boxes)
    raise ValueError("anonymization '{}': choose {}".format(mode, ", ".join(BASELINES)))


class AnonymizeThenCompress(Method):
    """A baseline as one method of the benchmarks: [detect faces], anonymize them, compress with a classic
    codec (a PillowCodecMethod). With a `detector`, encode detects on its input (the edge-side cost the
    latency harness times); without one, it anonymizes `regions`, which the caller sets per image (the
    precision harness: faces found once on the original, or the ground-truth heads)."""

    def __init__(self, mode, codec, detector=None, sigma=SIGMA):
        if mode not in BASELINES:
            raise ValueError("anonymization '{}': choose {}".format(mode, ", ".join(BASELINES)))
        self.mode, self.codec, self.detector, self.sigma = mode, codec, detector, sigma
        self.method, self.config = "{}+{}".format(mode, codec.method), codec.config
        self.backend = "{}+{}".format(codec.backend, detector.name if detector else "boxes")
        self.device = codec.device
        self.regions = []

    def prepare(self, rgb):
        return rgb

    def encode(self, rgb):
        boxes = [f.box for f in self.detector.detect(rgb)] if self.detector else self.regions
        return self.codec.encode(self.codec.prepare(anonymize(rgb, boxes, self.mode, self.sigma)))

    def decode(self, encoded):
        return self.codec.decode(encoded)
