"""Timing and summary statistics following the paper's protocol: all timed runs pooled, reported as mean,
sample standard deviation (ddof = 1) and minimum."""

import time

import numpy as np


def time_calls(fn, repeats, warmup=1):
    """Seconds of each of `repeats` calls of fn(), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def summarize(samples):
    """Pooled runs -> n, mean, sample std (ddof=1), min, median, p95 (seconds)."""
    a = np.asarray(samples, dtype=np.float64)
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
        "min": float(a.min()),
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
    }
