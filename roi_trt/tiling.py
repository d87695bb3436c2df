"""Run a transform on overlapping tiles and stitch the result, so memory is bounded at any image size.

Both transforms are stacks of 5x5 stride-2 (transposed) convolutions with pointwise GDN1 between them:
an output depends on less than 2 latent units of input beyond its own position (analysis: 2 (2^L - 1)
pixels < 2 d; synthesis: 1 + 1/2 + 1/4 + ... < 2 latents). So each tile is computed with a halo of
HALO latents on every side that has neighbours, and only its core is kept; at the image's own border
the tile pads exactly as the whole image would. The stitched result equals the untiled one up to the
summation order inside the runtime (float rounding).
"""

from collections import deque

import numpy as np

HALO = 2  # latent units


def spans(length, tile):
    """[start, end) of the cores along one axis: as few as `tile` allows, equal to within one unit (a
    thin remainder tile would spend most of its work on its halo)."""
    count = -(-length // tile)
    bounds = [length * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_tiled(transform, x, scale_in, scale_out, tile, keep, pool=None, side_by_side=1):
    """transform(x) computed tile by tile, `side_by_side` tiles at once on `pool` (an Executor) if given;
    each tile's core goes to keep(rows, cols, core) as it is done, so the caller decides what is kept of
    it (a float image, or only its cropped uint8 pixels).

    x is NCHW; `scale_in` / `scale_out` are the pixels per latent unit of input and output (analysis:
    d and 1, synthesis: 1 and d); `tile` is the largest core (rows, cols) in latent units. `rows` and
    `cols` are the (start, stop) output pixels the core covers, `core` the NCHW output there.
    """
    _, _, height, width = x.shape
    h, w = height // scale_in, width // scale_in
    running = deque()

    def run(a0, a1, b0, b1):
        return transform(np.ascontiguousarray(x[:, :, a0 * scale_in: a1 * scale_in, b0 * scale_in: b1 * scale_in]))

    def done(r0, r1, c0, c1, a0, b0, part):
        keep((r0 * scale_out, r1 * scale_out), (c0 * scale_out, c1 * scale_out), part[
            :, :, (r0 - a0) * scale_out: (r1 - a0) * scale_out, (c0 - b0) * scale_out: (c1 - b0) * scale_out])

    try:
        for r0, r1 in spans(h, tile[0]):
            a0, a1 = max(0, r0 - HALO), min(h, r1 + HALO)
            for c0, c1 in spans(w, tile[1]):
                b0, b1 = max(0, c0 - HALO), min(w, c1 + HALO)
                if pool is None:
                    done(r0, r1, c0, c1, a0, b0, run(a0, a1, b0, b1))
                    continue
                running.append(((r0, r1, c0, c1, a0, b0), pool.submit(run, a0, a1, b0, b1)))
                if len(running) == side_by_side:
                    where, future = running.popleft()
                    done(*(where + (future.result(),)))
        while running:
            where, future = running.popleft()
            done(*(where + (future.result(),)))
    finally:  # a tile failed: the image fails, its other tiles need not run
        for _, future in running:
            future.cancel()


def stitch(out):
    """keep() for run_tiled that copies each core into `out`, the whole NCHW output."""
    def keep(rows, cols, core):
        out[:, :, rows[0]: rows[1], cols[0]: cols[1]] = core
    return keep


def tile_side(budget, bytes_per_latent):
    """The core side (latent units) of the largest tile, halo included, whose working memory fits `budget`."""
    return max(1, int((budget / float(bytes_per_latent)) ** 0.5) - 2 * HALO)


def available_memory():
    """Bytes the system can still give (Linux MemAvailable; on a Jetson shared by CPU and GPU), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
