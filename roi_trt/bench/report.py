"""`roi-trt bench report`: results CSV -> a table in the layout of the paper's Tab. II/III, and a Fig. 5-style plot."""

import math
import os

from ..errors import RoiTrtError
from .latency import read_csv

PAPER_LATENCY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "benchmarks", "paper_latency.csv")
CODEC_ORDER = {"avif": 0, "jpeg": 1, "roi-codec": 2}
CODEC_LABEL = {"avif": "AVIF", "jpeg": "JPEG", "roi-codec": "ROI codec"}
BACKEND_COLOR = {"onnxruntime": "tab:blue", "torch-compressai": "tab:orange", "tensorrt": "tab:green"}


def _bar_color(row):
    if row["method"] != "roi-codec":
        return "tab:gray"
    backend = "tensorrt" if row["backend"].startswith("tensorrt") else row["backend"]  # tensorrt-plugin, ...
    return BACKEND_COLOR.get(backend, "tab:blue")


def unit_for(seconds):
    """Per-row unit as the paper chooses them: s from 0.2 s, ms from 1 ms, else µs."""
    if seconds >= 0.2:
        return "s", 1.0
    if seconds >= 1e-3:
        return "ms", 1e3
    return "µs", 1e6


def format_latency(mean, std, minimum):
    unit, scale = unit_for(mean)
    digits = 3 if mean * scale < 10 else (2 if mean * scale < 100 else 1)
    return "{:.{d}f} ± {:.{d}f} (min {:.{d}f}) {}".format(mean * scale, std * scale, minimum * scale, unit, d=digits)


def sort_key(row):
    quality = row["config"][1:] if row["config"].startswith("q") and row["config"][1:].isdigit() else None
    config = int(quality) if quality is not None else row["config"]
    return (row["device"], CODEC_ORDER.get(row["method"], 9), str(config).zfill(8), row["backend"], row["stage"] != "encode")


def label(row):
    if row["method"] == "roi-codec":
        n, _, m = row["config"].partition("-")
        return "({}, {}) {}".format(n, m, row["backend"])
    return "{} {}".format(CODEC_LABEL.get(row["method"], row["method"]), row["config"])


def load_paper(path=None):
    path = path or PAPER_LATENCY
    if not os.path.isfile(path):
        raise RoiTrtError("{}: paper tables not found (run from a source checkout or pass the CSV)".format(path))
    return read_csv(path)


def table(rows, paper=None):
    """Lines of text: one block per device, a row per method/config/backend/stage."""
    lines = []
    rows = sorted(rows, key=sort_key)
    for device in sorted({r["device"] for r in rows}):
        here = [r for r in rows if r["device"] == device]
        cpu = here[0].get("cpu", "")
        lines.append("")
        lines.append("device: {}{}".format(device, " ({}, {} threads)".format(cpu, here[0].get("threads") or "default") if cpu else ""))
        lines.append("{:<34} {:<7} {:<34} {:>14}".format("method", "stage", "latency mean ± std (min)", "bpp"))
        for r in here:
            bpp = "{:.3f} ± {:.3f}".format(r["bpp_mean"], r["bpp_std"]) if not math.isnan(r["bpp_std"]) else "{:.3f}".format(r["bpp_mean"])
            lines.append("{:<34} {:<7} {:<34} {:>14}".format(label(r), r["stage"], format_latency(r["mean_s"], r["std_s"], r["min_s"]), bpp))
            for p in paper or []:
                if (p["method"], p["config"], p["stage"]) == (r["method"], r["config"], r["stage"]):
                    lines.append("    vs {:<36} {:<34} ours/paper {:.2f}x".format(
                        p["device"], format_latency(p["mean_s"], p["std_s"], p["min_s"]), r["mean_s"] / p["mean_s"]))
    return lines


def plot(rows, path, replace=True):
    """Log-scale mean latency with one-std error bars; codecs left, our configurations right; one panel per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import save_png

    rows = sorted(rows, key=sort_key)
    stages = [s for s in ("encode", "decode") if any(r["stage"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4.5), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        here = [r for r in rows if r["stage"] == stage]
        labels = [label(r) + ("" if len({x["device"] for x in rows}) == 1 else "\n" + r["device"]) for r in here]
        means = [r["mean_s"] for r in here]
        stds = [0 if math.isnan(r["std_s"]) else r["std_s"] for r in here]
        colors = [_bar_color(r) for r in here]
        ax.bar(range(len(here)), means, yerr=stds, color=colors, capsize=3)
        ax.set_yscale("log")
        ax.set_xticks(range(len(here)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("{} latency [s]".format(stage))
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.set_title("{} ({})".format(stage, ", ".join(sorted({r["device"] for r in here}))), fontsize=9)
    fig.tight_layout()
    save_png(fig, path, replace)
    plt.close(fig)
