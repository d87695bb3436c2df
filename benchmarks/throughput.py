"""Batch throughput of `encode DIR` / `decode DIR` against pure transform time, side by side in one run.

For a directory of 512x512 photos (crops of the bundled ones), interleaved per round:
- transform-only: the analysis (synthesis) transform on frames already in memory, one after another with
  every thread, i.e. the ceiling 1 / (transform time) that the pipeline should approach;
- transform-only side by side: the same with the frames side by side as the CLI runs them for a batch
  (one thread each, `Backend.frames`);
- sequential: each file read, prepared, transformed, entropy coded and written before the next;
- pipelined: the same stages through `files.run_batch` (overlapped, bounded queues), as the CLI runs;
- pipelined, one frame at a time: the same with one transform over every thread (the CLI before
  frames ran side by side);
- and reading the photos alone (encode) and writing the decoded images as PNG alone (decode), with
  each library `imageio.decode_rgb` and `imageio.write_png` use.
Writes one CSV row per (direction, mode) with frames/s (median) and the ratio to the transform-only rate:
the median over rounds of the ratio within a round, so that this shared machine's drifts between rounds
cancel, with the lowest and highest round beside it (for PNG reading and writing alone the mean file
size instead).
"""

import argparse
import io
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.codec import open_codec
from roi_trt.files import Summary, decode_stages, encode_stages, plan, run_batch, stage_workers
from roi_trt.imageio import decode_rgb, load_rgb, resize, write_png
from roi_trt.pipeline import run_stages
from roi_trt.samples import sample_photos


def make_photos(directory, count, size):
    photos = [load_rgb(p)[0] for p in sample_photos()]
    paths = []
    for i in range(count):
        rgb = photos[i % len(photos)]
        rgb = resize(rgb[:, ::-1] if (i // len(photos)) % 2 else rgb, (size, size))
        path = os.path.join(directory, "photo{:03d}.png".format(i))
        Image.fromarray(rgb).save(path)
        paths.append(path)
    return paths


def sequential(jobs, stages):
    for job in jobs:
        value = job
        for stage in stages:
            value = stage(value)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "throughput.csv"))
    args = parse_arguments(parser, argv)

    with tempfile.TemporaryDirectory() as tmp, open_codec("demo", threads=args.threads) as codec, \
            open_codec("demo", frames=args.images) as batch:  # as the CLI opens it for a directory
        paths = make_photos(tmp, args.images, args.size)
        frames = [codec.prepare(load_rgb(p)[0]) for p in paths]
        latents = [np.rint(codec.analyze(f)[0])[None].astype(np.float32) for f in frames]
        enc_jobs = plan(paths, os.path.join(tmp, "roi"), ".roi", True, (".roi",))
        sequential(enc_jobs, encode_stages(codec, replace=True))  # makes the streams, warms up
        streams = sorted(os.path.join(tmp, "roi", n) for n in os.listdir(os.path.join(tmp, "roi")))
        dec_jobs = plan(streams, os.path.join(tmp, "png"), ".decoded.png", True, (".png",))
        sequential(dec_jobs, decode_stages(codec, replace=True))

        decoded = [codec.finish_decode(codec.synthesize(y)[0], None) for y in latents]

        photos = [open(p, "rb").read() for p in paths]

        def png_reading(library):
            return lambda: [decode_rgb(data, "photo", library) for data in photos]

        def png_writing(library):
            return lambda: [write_png(rgb, io.BytesIO(), library) for rgb in decoded]

        def png_bytes(library):
            files = [io.BytesIO() for _ in decoded]
            for rgb, f in zip(decoded, files):
                write_png(rgb, f, library)
            return sum(len(f.getvalue()) for f in files) // len(files)

        def pipelined(jobs, stages, workers=None):
            return lambda: run_batch(jobs, stages, Summary("", len(jobs)), as_json=False, progress=False,
                                     workers=workers)

        def side_by_side(transform, inputs):
            return lambda: list(run_stages(inputs, [transform], workers=[batch.backend.frames]))

        modes = {
            ("encode", "transform-only"): lambda: [codec.analyze(f) for f in frames],
            ("encode", "transform-only side by side"): side_by_side(batch.analyze, frames),
            ("encode", "sequential"): lambda: sequential(enc_jobs, encode_stages(codec, replace=True)),
            ("encode", "pipelined"): pipelined(enc_jobs, encode_stages(batch, replace=True), stage_workers(batch)),
            ("encode", "pipelined, one frame at a time"): pipelined(enc_jobs, encode_stages(codec, replace=True)),
            ("decode", "transform-only"): lambda: [codec.synthesize(y) for y in latents],
            ("decode", "transform-only side by side"): side_by_side(batch.synthesize, latents),
            ("decode", "sequential"): lambda: sequential(dec_jobs, decode_stages(codec, replace=True)),
            ("decode", "pipelined"): pipelined(dec_jobs, decode_stages(batch, replace=True), stage_workers(batch)),
            ("decode", "pipelined, one frame at a time"): pipelined(dec_jobs, decode_stages(codec, replace=True)),
            ("encode", "png-reading imagecodecs"): png_reading("imagecodecs"),
            ("encode", "png-reading pillow"): png_reading("pillow"),
            ("decode", "png-writing imagecodecs"): png_writing("imagecodecs"),
            ("decode", "png-writing pillow"): png_writing("pillow"),
        }
        seconds = {key: [] for key in modes}
        devnull = open(os.devnull, "w")
        for _ in range(args.rounds):  # interleaved, so drifts of this shared machine hit every mode alike
            for key, fn in modes.items():
                stdout, sys.stdout = sys.stdout, devnull  # run_batch prints its summary
                try:
                    seconds[key].append(timed(fn))
                finally:
                    sys.stdout = stdout
        sizes = {mode: png_bytes(mode.split()[-1]) for _, mode in modes if mode.startswith("png-writing")}
        sizes.update({mode: sum(map(len, photos)) // len(photos) for _, mode in modes if mode.startswith("png-reading")})
    rows = []
    for (direction, mode), values in seconds.items():
        fps = args.images / float(np.median(values))
        fractions = np.array(seconds[(direction, "transform-only")]) / np.array(values)  # round by round
        row = {"direction": direction, "mode": mode, "images": args.images, "size": args.size,
               "rounds": args.rounds, "median_s": round(float(np.median(values)), 4), "frames_per_s": round(fps, 3),
               "fraction_of_transform_rate": "", "lowest_round": "", "highest_round": "",
               "mean_file_bytes": sizes.get(mode, ""),
               "frames_side_by_side": 1, "threads_per_transform": args.threads}
        if mode in ("transform-only side by side", "pipelined"):
            row.update(frames_side_by_side=batch.backend.frames,
                       threads_per_transform=batch.backend.options.intra_op_num_threads)
        if mode in sizes:  # reading or writing alone: no share of the transform rate, no transform
            row.update(frames_side_by_side="", threads_per_transform="")
            print("{:<7} {:<30} {:6.2f} frames/s  {} B per image".format(direction, mode, fps, sizes[mode]))
        else:
            row.update(fraction_of_transform_rate=round(float(np.median(fractions)), 4),
                       lowest_round=round(float(fractions.min()), 4), highest_round=round(float(fractions.max()), 4))
            print("{:<7} {:<30} {:6.2f} frames/s  {:6.1%} of the transform-only rate ({:.1%} to {:.1%})".format(
                direction, mode, fps, np.median(fractions), fractions.min(), fractions.max()))
        rows.append(row)
    write_rows(args.output, list(rows[0]), rows, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
