"""Encoder latency at 512x512 on CPU: PyTorch eager vs ONNX Runtime (custom-op file and standard-ops file).

Run:  python benchmarks/export_latency.py [--repeats 10] [--threads 2] [-o benchmarks/results/export_latency.csv] [--force]
Random-initialised weights: latency depends on shapes only. All methods run in one process, interleaved
per configuration, with the same thread count.
"""

import argparse
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.bench.stats import summarize, time_calls
from roi_trt.checkpoint import random_model
from roi_trt.export import export_model
from roi_trt.model import PAPER_CONFIGS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "export_latency.csv"))
    args = parse_arguments(parser, argv)

    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    x = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for N, M in PAPER_CONFIGS:
            model, info = random_model(N, M)
            out = os.path.join(tmp, f"{N}-{M}")
            export_model(model, info, out)
            xt = torch.from_numpy(x)

            def torch_eager():
                with torch.no_grad():
                    model._encoder(xt)

            methods = {"torch-eager": torch_eager}
            for variant, name in (("onnxruntime-custom-op", "encoder.onnx"), ("onnxruntime-standard-ops", "encoder.std.onnx")):
                s = ort.InferenceSession(os.path.join(out, name), options, providers=["CPUExecutionProvider"])
                methods[variant] = lambda s=s: s.run(None, {"image": x})
            for method, fn in methods.items():
                stats = summarize(time_calls(fn, args.repeats, warmup=2))
                rows.append({"config": f"{N}-{M}", "method": method, **stats})
                print(f"({N},{M}) {method:<26} mean {stats['mean'] * 1e3:8.1f} ms  std {stats['std'] * 1e3:6.1f}  min {stats['min'] * 1e3:8.1f}")
    by = {(r["config"], r["method"]): r["mean"] for r in rows}
    print("\nratios (mean latency):")
    for N, M in PAPER_CONFIGS:
        c = f"{N}-{M}"
        print(
            f"({N},{M}) torch/onnxruntime {by[c, 'torch-eager'] / by[c, 'onnxruntime-custom-op']:.2f}x   "
            f"custom-op/standard-ops {by[c, 'onnxruntime-custom-op'] / by[c, 'onnxruntime-standard-ops']:.3f}"
        )
    write_rows(args.output, list(rows[0]) + ["threads", "size"], rows, {"threads": args.threads, "size": args.size},
               replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
