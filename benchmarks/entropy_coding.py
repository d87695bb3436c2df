"""Our rANS coder vs CompressAI's EntropyBottleneck.compress/decompress, side by side in one run.

Run:  python benchmarks/entropy_coding.py [--repeats 20] [-o benchmarks/results/entropy_coding.csv] [--force]
Latents: the shipped demo checkpoint's analysis output for a bundled photo at 512x512 (128 x 32 x 32),
and Gaussian latents (128 and 256 x 32 x 32) through random-initialised bottlenecks. Both coders produce
the same bytes (checked here too). Then `roi-trt encode`'s end-to-end latency on the bundled photos at
512x512 (ONNX Runtime, CPU), split into analysis transform and entropy coding.
"""

import argparse
import os
import sys

import torch

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.bench.stats import summarize, time_calls
from roi_trt.checkpoint import load_checkpoint
from roi_trt.codec import open_codec
from roi_trt.entropy import decode_latent, encode_latent
from roi_trt.imageio import load_rgb, resize, to_nchw
from roi_trt.model import RoiAutoencoder, entropy_tables
from roi_trt.samples import sample_photos
from roi_trt.store import DEMO_CHECKPOINT


def cases():
    trained, _ = load_checkpoint(DEMO_CHECKPOINT)
    rgb, _ = load_rgb(sample_photos()[0])
    with torch.no_grad():
        y = trained._encoder(torch.from_numpy(to_nchw(resize(rgb, (512, 512)))))
    yield "demo 128x32x32 (astronaut)", trained._bottleneck, y
    for N in (128, 256):
        torch.manual_seed(N)
        model = RoiAutoencoder(N, 2)
        model._bottleneck.update(force=True)
        yield f"random {N}x32x32", model._bottleneck, torch.randn(1, N, 32, 32) * 4


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "entropy_coding.csv"))
    args = parse_arguments(parser, argv)
    torch.set_num_threads(1)
    rows = []
    for label, eb, y in cases():
        eb.eval()
        tables = entropy_tables(eb)
        y_np = y[0].numpy()
        hw = tuple(y.shape[-2:])
        theirs = eb.compress(y)[0]
        ours = encode_latent(y_np, tables)
        assert ours == theirs, "streams differ"
        timings = {
            ("compressai", "encode"): time_calls(lambda: eb.compress(y), args.repeats, warmup=2),
            ("roi-trt", "encode"): time_calls(lambda: encode_latent(y_np, tables), args.repeats, warmup=2),
            ("compressai", "decode"): time_calls(lambda: eb.decompress([theirs], hw), args.repeats, warmup=2),
            ("roi-trt", "decode"): time_calls(lambda: decode_latent(ours, tables, hw), args.repeats, warmup=2),
        }
        stats = {key: summarize(samples) for key, samples in timings.items()}
        for (coder, stage), s in stats.items():
            rows.append({"latent": label, "coder": coder, "stage": stage, "bytes": len(ours), **s})
        enc = stats["compressai", "encode"]["mean"] / stats["roi-trt", "encode"]["mean"]
        dec = stats["compressai", "decode"]["mean"] / stats["roi-trt", "decode"]["mean"]
        both = (stats["compressai", "encode"]["mean"] + stats["compressai", "decode"]["mean"]) / (
            stats["roi-trt", "encode"]["mean"] + stats["roi-trt", "decode"]["mean"])
        print(f"{label:<28} bytes {len(ours):7d}  encode {stats['compressai', 'encode']['mean'] * 1e3:6.2f} -> "
              f"{stats['roi-trt', 'encode']['mean'] * 1e3:5.2f} ms ({enc:4.1f}x)  decode "
              f"{stats['compressai', 'decode']['mean'] * 1e3:6.2f} -> {stats['roi-trt', 'decode']['mean'] * 1e3:5.2f} ms "
              f"({dec:4.1f}x)  encode+decode {both:4.1f}x")
    codec = open_codec(None, backend="onnxruntime")
    for path in sample_photos():
        rgb = resize(load_rgb(path)[0], (512, 512))
        splits = [codec.encode(rgb)[1] for _ in range(args.repeats // 4 + 1)][1:]  # first run warms up
        analysis = summarize([t.transform for t in splits])
        coding = summarize([t.entropy for t in splits])
        share = coding["mean"] / (analysis["mean"] + coding["mean"])
        name = os.path.basename(path)
        print(f"encode {name:<18} analysis {analysis['mean'] * 1e3:7.1f} ms  entropy coding {coding['mean'] * 1e3:5.2f} ms "
              f"({share:.1%} of encode)")
        for stage, stats in (("analysis", analysis), ("entropy-coding", coding)):
            rows.append({"latent": f"encode {name} 512x512", "coder": "roi-trt onnxruntime", "stage": stage, "bytes": "", **stats})
    write_rows(args.output, list(rows[0]) + ["torch_threads"], rows, {"torch_threads": 1}, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
