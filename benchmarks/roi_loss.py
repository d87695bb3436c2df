"""ROI loss cost in a training step: vectorized (summed-area table) vs one crop per box, and vs the model.

Run:  python benchmarks/roi_loss.py [--boxes 40] [--repeats 5] [--step-repeats 2] [-o benchmarks/results/roi_loss.csv] [--force]
Batch 14 at 512x512 (the paper's setting), `--boxes` head boxes and as many person boxes per image;
forward + backward of both ROI terms. A (128, 2) training step (forward + backward) is timed for scale.
Interleaved: each round times both losses once (and the step, for the first `--step-repeats` rounds), after
one untimed call of each, so this shared machine's drifts hit every case alike.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.bench.stats import summarize
from roi_trt.model import RoiAutoencoder
from roi_trt.train.losses import roi_loss


def per_box(x, x_hat, boxes, valid, k):
    total = x.new_zeros(())
    for i in range(x.shape[0]):
        terms = [F.mse_loss(x_hat[i, :, y0:y1, x0:x1], x[i, :, y0:y1, x0:x1])
                 for (x0, y0, x1, y1), v in zip(boxes[i].tolist(), valid[i].tolist()) if v]
        if terms:
            stacked = torch.stack(terms)
            total = total + ((1 - stacked) if k == 1 else stacked).mean()
    return total / x.shape[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step-repeats", type=int, default=2, help="Timed training steps (each takes tens of seconds on a CPU).")
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "roi_loss.csv"))
    args = parse_arguments(parser, argv)
    if min(args.repeats, args.step_repeats) < 1:
        parser.error("--repeats and --step-repeats: at least 1")
    g = torch.Generator().manual_seed(0)
    B, S, K = 14, 512, args.boxes
    x = torch.rand(B, 3, S, S, generator=g)
    x_hat = torch.rand(B, 3, S, S, generator=g, requires_grad=True)
    corners = torch.randint(0, S - 64, (B, K, 2), generator=g)
    sizes = torch.randint(4, 64, (B, K, 2), generator=g)
    boxes = torch.cat([corners, corners + sizes], dim=2)
    valid = torch.ones(B, K, dtype=torch.bool)

    def step(fn):
        def run():
            x_hat.grad = None
            (fn(x, x_hat, boxes, valid, 1) + fn(x, x_hat, boxes, valid, 0)).backward()
        return run

    model = RoiAutoencoder(128, 2)

    def train_step():
        model.zero_grad()
        out, likelihoods = model(x)
        (F.mse_loss(out, x) - likelihoods.log().mean() * 1e-3).backward()

    cases = {"roi-loss-vectorized": step(roi_loss), "roi-loss-per-box": step(per_box), "training-step-128-2": train_step}
    times = {case: [] for case in cases}
    for fn in cases.values():
        fn()  # warm-up
    for round_ in range(args.repeats):
        for case, fn in cases.items():
            if case.startswith("training-step") and round_ >= args.step_repeats:
                continue
            start = time.perf_counter()
            fn()
            times[case].append(time.perf_counter() - start)
    rows = [dict(case=case, batch=B, size=S, head_boxes=K, person_boxes=K, **summarize(samples))
            for case, samples in times.items()]
    vec, loop, net = (summarize(times[case])["mean"] for case in cases)
    print(f"batch {B} x {S}x{S}, {K} head + {K} person boxes per image, forward + backward:")
    print(f"  ROI loss, vectorized   {vec * 1e3:8.1f} ms")
    print(f"  ROI loss, per box      {loop * 1e3:8.1f} ms   ({loop / vec:.1f}x slower)")
    print(f"  (128, 2) model step    {net * 1e3:8.1f} ms   (vectorized ROI loss = {vec / net:.2%} of it)")
    write_rows(args.output, list(rows[0]), rows, {"threads": torch.get_num_threads()}, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
