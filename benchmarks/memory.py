"""Peak memory and time of `roi-trt encode` / `decode` at 1080p, 12 MP and 40 MP, tiled vs untiled,
and of a batch of 12 MP photos with frames side by side vs one at a time.

Each run is its own process (peak RSS from wait4's rusage), on photos made from the bundled ones;
tiled is the default budget, untiled `--max-memory 64G` (skipped at 40 MP, where it would need
~20 GB / ~45 GB). The batch (`--batch` photos in one directory) runs as the CLI does by default (one
frame per core side by side, their tiles too) and with `--threads <cores>` (one frame at a time over
every core). The modes alternate for `--rounds` rounds; each row has the fastest round's process
time, its transform time (from `--json`; not for a batch, whose frames overlap) and the largest peak. The two
single-image modes are also compared: identical stream bytes and the largest pixel difference of the
decoded images.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from roi_trt.backends.onnxruntime import usable_cores
from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.imageio import load_rgb, resize
from roi_trt.samples import sample_photos

SIZES = {"1080p": (1080, 1920), "12MP": (3000, 4000), "40MP": (5464, 7320)}
UNTILED_UP_TO = 12_000_000  # pixels


def run(args):
    """-> (seconds, transform seconds, peak RSS in bytes) of one CLI process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "roi_trt.cli"] + args + ["--json", "--force"], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("failed: roi-trt {}\n{}".format(" ".join(args), err.read().decode()))
        transform_ms = json.loads(out.readline())["transform_ms"]
    return elapsed, transform_ms / 1e3, usage.ru_maxrss * 1024


def measure(name, pixels, modes, source, outputs, rounds, batch=False):
    """Encode `source` and decode its streams per mode, alternating for `rounds` rounds -> rows; `outputs`
    is a pattern for the stream and image paths of a mode, .format(mode, "roi" or "png")."""
    runs = {}
    for _ in range(rounds):
        for mode, extra in modes.items():
            stream, image = outputs.format(mode, "roi"), outputs.format(mode, "png")
            for stage, cli in (("encode", ["encode", source, "-o", stream]), ("decode", ["decode", stream, "-o", image])):
                runs.setdefault((mode, stage), []).append(run(cli + extra))
    rows = []
    for (mode, stage), results in runs.items():
        seconds, transform, peak = min(r[0] for r in results), min(r[1] for r in results), max(r[2] for r in results)
        rows.append({"size": name, "pixels": pixels, "mode": mode, "stage": stage, "rounds": rounds,
                     "seconds": round(seconds, 2), "transform_seconds": "" if batch else round(transform, 2),
                     "peak_rss_mb": round(peak / 2 ** 20, 1)})
        print("{:<7} {:<19} {:<7} {:7.2f} s{}  peak RSS {:7.1f} MB".format(
            name, mode, stage, seconds, "" if batch else " (transform {:6.2f} s)".format(transform), peak / 2 ** 20))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1080p,12MP,40MP")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=3, help="12 MP photos in the batch (0: no batch rows)")
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "memory.csv"))
    args = parse_arguments(parser, argv)

    rows = []
    astronaut = load_rgb(sample_photos()[0])[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes.split(","):
            height, width = SIZES[name]
            photo = os.path.join(tmp, name + ".png")
            Image.fromarray(resize(astronaut, (height, width))).save(photo)
            modes = {"tiled": []}
            if height * width <= UNTILED_UP_TO:
                modes["untiled"] = ["--max-memory", "64G"]
            rows += measure(name, height * width, modes, photo, os.path.join(tmp, name + ".{}.{}"), args.rounds)
            if "untiled" in modes:
                same_stream = open(os.path.join(tmp, name + ".tiled.roi"), "rb").read() == open(
                    os.path.join(tmp, name + ".untiled.roi"), "rb").read()
                a, b = (np.asarray(Image.open(os.path.join(tmp, "{}.{}.png".format(name, m))), dtype=np.int16)
                        for m in ("tiled", "untiled"))
                diff = int(np.abs(a - b).max())
                print("{:<6} tiled vs untiled: identical stream {}, decoded max |diff| {}".format(name, same_stream, diff))
                for row in rows[-4:]:
                    row.update(identical_stream=int(same_stream), image_max_abs_diff=diff)
        if args.batch:
            photos = os.path.join(tmp, "batch")
            os.makedirs(photos)
            originals = [load_rgb(path)[0] for path in sample_photos()]
            for i in range(args.batch):
                Image.fromarray(resize(originals[i % len(originals)], SIZES["12MP"])).save(
                    os.path.join(photos, "p{}.png".format(i)))
            modes = {"batch side by side": [], "batch one at a time": ["--threads", str(usable_cores())]}
            rows += measure("{}x12MP".format(args.batch), args.batch * 12_000_000, modes, photos,
                            os.path.join(tmp, "{}", "{}"), args.rounds, batch=True)  # directories
    fields = ["size", "pixels", "mode", "stage", "rounds", "seconds", "transform_seconds", "peak_rss_mb",
              "identical_stream", "image_max_abs_diff"]
    write_rows(args.output, fields, rows, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
