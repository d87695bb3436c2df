"""The documentation's results, generated from the committed measurements: no figure is copied by hand.

Every section between the lines  <!-- results:NAME -->  and  <!-- /results:NAME -->  in README.md,
benchmarks/README.md and docs/*.md is rewritten from benchmarks/results/*.csv (and the shipped export's manifest). CSVs written
before the provenance columns existed lack some of them: they read "not recorded".

Run:  python benchmarks/tables.py           # rewrite the sections
      python benchmarks/tables.py --check   # change nothing; exit 1 naming each section that differs
"""

import argparse
import csv
import glob
import math
import os
import re
import sys
from collections import OrderedDict

from roi_trt.artifacts import read_manifest
from roi_trt.bench import precision, precision_report
from roi_trt.bench.provenance import COLUMNS as PROVENANCE
from roi_trt.bench.report import format_latency
from roi_trt.fileio import write_bytes_atomic
from roi_trt.samples import sample_photos
from roi_trt.store import DEMO_EXPORT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
# A marker is a line of its own (a marker quoted in prose is not one).
SECTION = re.compile(r"^<!-- results:(?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)^<!-- /results:(?P=name) -->$", re.S | re.M)
MARKER = re.compile(r"^<!-- /?results:(.*) -->$", re.M)
NOT_RECORDED = "not recorded"
REFERENCE = ("roi-codec", "128-2")  # the shipped demo in latency.sh: the configuration whose bpp means something


def documents(root=ROOT):
    """The documents that may hold generated sections."""
    return [os.path.join(root, "README.md"), os.path.join(root, "benchmarks", "README.md")] + sorted(
        glob.glob(os.path.join(root, "docs", "*.md")))


# -- reading ---------------------------------------------------------------------------------------------

class Results(object):
    """The committed results in `directory`, each CSV read once (cells as text)."""

    def __init__(self, directory=RESULTS):
        self.directory = directory
        self._rows = {}

    def path(self, name):
        return os.path.join(self.directory, name)

    def rows(self, name):
        if name not in self._rows:
            with open(self.path(name), newline="", encoding="utf-8") as f:
                self._rows[name] = list(csv.DictReader(f))
        return self._rows[name]

    def csv_names(self):
        return sorted(os.path.basename(p) for p in glob.glob(self.path("*.csv")))


def value(row, key):
    """A numeric cell as float (nan when empty or absent)."""
    text = row.get(key)
    return float(text) if text not in (None, "") else float("nan")


def distinct(rows, key):
    """The distinct values of a column, in order; NOT_RECORDED when the CSV has no such column."""
    if not rows or key not in rows[0]:
        return NOT_RECORDED
    return ", ".join(OrderedDict((r[key], None) for r in rows if r[key]))


def machine(rows, libraries=(("onnxruntime", "ONNX Runtime"),)):
    """'CPU, N cores, Library x.y' from the provenance columns a CSV has."""
    parts = [distinct(rows, "cpu")]
    if rows and "cores" in rows[0]:
        parts.append(distinct(rows, "cores") + " cores")
    parts += ["{} {}".format(label, distinct(rows, key)) for key, label in libraries if rows and rows[0].get(key)]
    return ", ".join(parts)


def source(name, rows, libraries=(("onnxruntime", "ONNX Runtime"),)):
    return "`benchmarks/results/{}`: {}".format(name, machine(rows, libraries))


def config_label(config):
    n, _, m = config.partition("-")
    return "({}, {})".format(n, m)


# -- formatting ------------------------------------------------------------------------------------------

def ms(seconds, digits=1):
    return "{:.{d}f} ms".format(seconds * 1e3, d=digits)


def times(ratio, digits=2):
    return "—" if math.isnan(ratio) else "{:.{d}f}×".format(ratio, d=digits)


def percent(fraction, digits=0):
    return "—" if math.isnan(fraction) else "{:.{d}f} %".format(100 * fraction, d=digits)


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


# -- sections --------------------------------------------------------------------------------------------

def demo(results):
    rows = results.rows("demo.csv")
    body = [(r["image"], "{}×{}".format(r["width"], r["height"]), "{:.3f}".format(value(r, "bpp")),
             "{:.2f} dB".format(value(r, "psnr_db")),
             "{:.0f} ms ({:.0f} + {:.1f})".format(value(r, "analysis_ms") + value(r, "entropy_encode_ms"),
                                                 value(r, "analysis_ms"), value(r, "entropy_encode_ms")),
             "{:.0f} ms ({:.1f} + {:.0f})".format(value(r, "entropy_decode_ms") + value(r, "synthesis_ms"),
                                                 value(r, "entropy_decode_ms"), value(r, "synthesis_ms")))
            for r in rows]
    return table(["photo", "size", "bpp", "PSNR", "encode (analysis + entropy coding)",
                  "decode (entropy decoding + synthesis)"], body) + "\n\n({}; each photo's first run.)".format(
        source("demo.csv", rows))


def demo_summary(results):
    rows = results.rows("demo.csv")
    bpp, psnr = [value(r, "bpp") for r in rows], [value(r, "psnr_db") for r in rows]
    return ("Measured on the {} bundled photos at their own sizes (`benchmarks/results/demo.csv`): **{:.3f}–{:.3f} bpp "
            "(mean {:.3f}), PSNR {:.1f}–{:.1f} dB (mean {:.1f} dB)**.".format(
                len(rows), min(bpp), max(bpp), sum(bpp) / len(bpp), min(psnr), max(psnr), sum(psnr) / len(psnr)))


def export_verification(results):
    manifest = read_manifest(DEMO_EXPORT)
    body = [(r["input"], r["variant"], "{:.1e}".format(r["latent_max_abs_diff"]),
             "{:.1e}".format(r["torch_fp32_latent_max_abs_diff"]), "{:.1e}".format(r["image_max_abs_diff"]),
             "{:.1e}".format(r["torch_fp32_image_max_abs_diff"]), percent(r["symbol_agreement"], 2))
            for r in manifest["verification"]]
    tools = manifest["tools"]
    return table(["input", "graph", "latent error", "PyTorch float32's", "image error", "PyTorch float32's",
                  "symbols equal"], body) + (
        "\n\n(The shipped demo's export, `roi_trt/data/demo-128-2/manifest.json`: errors against PyTorch float64, made "
        "with ONNX Runtime {}, PyTorch {}; the rule: {}.)".format(
            tools.get("onnxruntime"), tools.get("torch"), manifest["verification_rule"]))


def machines(results):
    body = []
    for name in results.csv_names():
        rows = results.rows(name)
        commit = distinct(rows, "commit")
        body.append(("`{}`".format(name), len(rows), distinct(rows, "cpu"), distinct(rows, "cores"),
                     distinct(rows, "python"), distinct(rows, "onnxruntime"), distinct(rows, "torch"),
                     commit if commit == NOT_RECORDED else commit[:10] + ("-dirty" if commit.endswith("-dirty") else ""),
                     distinct([dict(r, timestamp=r["timestamp"][:10]) for r in rows], "timestamp")
                     if rows and "timestamp" in rows[0] else NOT_RECORDED))
    return table(["results", "rows", "CPU", "cores", "Python", "ONNX Runtime", "torch", "commit", "run on"], body)


def _latency_rows(results):
    rows = results.rows("latency_cpu.csv")
    return rows, {(r["method"], r["config"], r["backend"], r["stage"]): r for r in rows}


def _cell(row):
    return format_latency(value(row, "mean_s"), value(row, "std_s"), value(row, "min_s")) if row else "—"


def latency(results):
    rows, by = _latency_rows(results)
    configs = list(OrderedDict((r["config"], None) for r in rows if r["method"] == "roi-codec"))
    body = []
    for config in configs:
        line = [config_label(config)]
        for stage in ("encode", "decode"):
            ours, paper = by.get(("roi-codec", config, "onnxruntime", stage)), by.get(("roi-codec", config, "torch-compressai", stage))
            ratio = value(paper, "mean_s") / value(ours, "mean_s") if ours and paper else float("nan")
            line += [_cell(ours), _cell(paper), times(ratio)]
        body.append(line)
    first = rows[0]
    return table(["configuration", "encode onnxruntime", "encode torch (paper's pipeline)", "torch / onnxruntime",
                  "decode onnxruntime", "decode torch", "torch / onnxruntime"], body) + (
        "\n\n(mean ± sample std (min); {}, torch {}, {} threads; {} photos at {}×{}, {} timed runs each.)".format(
            source("latency_cpu.csv", rows), distinct(rows, "torch"), first["threads"], first["images"], first["size"],
            first["size"], int(value(first, "n") / value(first, "images"))))


def latency_codecs(results):
    rows, by = _latency_rows(results)
    reference = by.get(REFERENCE + ("onnxruntime", "encode"))
    body = []
    for r in rows:
        if r["stage"] != "encode" or (r["method"] == REFERENCE[0] and r["config"] != REFERENCE[1]):
            continue
        decode = by.get((r["method"], r["config"], r["backend"], "decode"))
        label = ("{} {}".format(config_label(r["config"]), r["backend"]) if r["method"] == "roi-codec"
                 else "{} {}".format(r["method"].upper(), r["config"]))
        body.append((label, _cell(r), _cell(decode), "{:.3f}".format(value(r, "bpp_mean")),
                     times(value(reference, "mean_s") / value(r, "mean_s"))))
    return table(["method", "encode", "decode", "bpp", "{} onnxruntime encode / this encode".format(
        config_label(REFERENCE[1]))], body) + "\n\n({}.)".format(source("latency_cpu.csv", rows))


def entropy_coding(results):
    rows = results.rows("entropy_coding.csv")
    by = {(r["latent"], r["coder"], r["stage"]): value(r, "mean") for r in rows}
    latents = list(OrderedDict((r["latent"], None) for r in rows if r["coder"] == "roi-trt"))
    body = []
    for latent in latents:
        theirs = [by[latent, "compressai", s] for s in ("encode", "decode")]
        ours = [by[latent, "roi-trt", s] for s in ("encode", "decode")]
        size = next(r["bytes"] for r in rows if r["latent"] == latent)
        body.append((latent, size, ms(theirs[0], 2), ms(ours[0], 2), times(theirs[0] / ours[0], 1), ms(theirs[1], 2),
                     ms(ours[1], 2), times(theirs[1] / ours[1], 1), times(sum(theirs) / sum(ours), 1)))
    coding = table(["latent", "bytes", "CompressAI encode", "roi-trt encode", "speed-up", "CompressAI decode",
                    "roi-trt decode", "speed-up", "encode + decode speed-up"], body)
    split = []
    for latent in OrderedDict((r["latent"], None) for r in rows if r["stage"] == "analysis"):
        analysis, entropy = by[latent, "roi-trt onnxruntime", "analysis"], by[latent, "roi-trt onnxruntime", "entropy-coding"]
        split.append((latent.replace("encode ", "", 1), ms(analysis), ms(entropy, 2), percent(entropy / (analysis + entropy), 1)))
    return coding + "\n\n" + table(["`roi-trt encode` (ONNX Runtime)", "analysis transform", "entropy coding",
                                   "entropy coding's share"], split) + "\n\n({}, {} torch thread.)".format(
        source("entropy_coding.csv", rows), distinct(rows, "torch_threads"))


def export_latency(results):
    rows = results.rows("export_latency.csv")
    by = {(r["config"], r["method"]): r for r in rows}
    body = []
    for config in OrderedDict((r["config"], None) for r in rows):
        eager, custom, standard = (by[config, m] for m in ("torch-eager", "onnxruntime-custom-op", "onnxruntime-standard-ops"))
        within = abs(value(custom, "mean") - value(standard, "mean")) <= max(value(custom, "std"), value(standard, "std"))
        body.append((config_label(config), ms(value(eager, "mean"), 0), ms(value(custom, "mean"), 0),
                     ms(value(standard, "mean"), 0), times(value(eager, "mean") / value(custom, "mean")),
                     "{:.3f} ({} one std)".format(value(custom, "mean") / value(standard, "mean"),
                                                   "within" if within else "beyond")))
    first = rows[0]
    return table(["configuration", "PyTorch eager", "ONNX Runtime custom-op", "ONNX Runtime standard-ops",
                  "PyTorch / ONNX Runtime", "custom-op / standard-ops"], body) + (
        "\n\n(Encoder alone at {0}×{0}, mean of {1} runs, {2} threads; {3}, torch {4}.)".format(
            first["size"], first["n"], first["threads"], source("export_latency.csv", rows), distinct(rows, "torch")))


def _model_label(model):
    kind, n, m = model.rsplit("-", 2)
    return "({}, {}){}".format(n, m, " demo" if kind == "demo" else "")


def roofline(results):
    rows = results.rows("roofline.csv")
    by = {r["case"]: r for r in rows}
    gemms = [r for r in rows if r["model"] == "gemm"]
    peak = max(gemms, key=lambda r: value(r, "gflop_per_s"))
    matmul = max((r for r in gemms if "conv" not in r["case"]), key=lambda r: value(r, "gflop_per_s"))
    models = list(OrderedDict((r["model"], None) for r in rows if r["model"] != "gemm"))
    body, ratios, goals = [], [], {"fraction_of_matmul_peak": [], "fraction_of_peak": []}
    forms = ("analysis", "synthesis-convtranspose", "synthesis-polyphase", "synthesis-polyphase-depthtospace",
             "synthesis-polyphase-image-layer-too")

    def both(row):
        return "{} ({})".format(percent(value(row, "fraction_of_peak")), percent(value(row, "fraction_of_matmul_peak")))

    for model in models:
        analysis, transposed, phases, depth_to_space, image_layer = (by["{} {}".format(model, f)] for f in forms)
        body.append((_model_label(model), both(analysis), both(transposed), both(phases),
                     times(value(transposed, "best_ms") / value(phases, "best_ms")),
                     percent(value(depth_to_space, "fraction_of_peak")), percent(value(image_layer, "fraction_of_peak"))))
        ratios.append("{} {}".format(times(value(phases, "best_ms") / value(analysis, "best_ms")), _model_label(model)))
        for key in goals:
            if value(analysis, key) >= 0.8 and value(phases, key) >= 0.7:
                goals[key].append(_model_label(model))
    first = rows[0]
    return ("The peak is the fastest GEMM ONNX Runtime ran in the same run: `{}` at {:.0f} GFLOP/s (the fastest MatMul: "
            "`{}` at {:.0f} GFLOP/s); fractions of the MatMul peak in brackets.\n\n".format(
                peak["case"], value(peak, "gflop_per_s"), matmul["case"], value(matmul, "gflop_per_s"))
            + table(["model", "analysis", "synthesis as ConvTranspose (emitted)", "synthesis in phases (exported)",
                     "speed-up", "phases + DepthToSpace", "image layer in phases too"], body)
            + "\n\nThe exported decoder takes {} the analysis transform's time. Both goals (analysis ≥ 80 %, synthesis "
              "≥ 70 %) hold against the MatMul peak for {}, and against the peak itself for {}.".format(
                  " and ".join(ratios), ", ".join(goals["fraction_of_matmul_peak"]) or "none",
                  ", ".join(goals["fraction_of_peak"]) or "none")
            + "\n\n({}, {} threads, {}×{}, each case the best of {} samples.)".format(
                source("roofline.csv", rows), first["threads"], by[models[0] + " analysis"]["size"],
                by[models[0] + " analysis"]["size"], first["rounds"]))


def memory(results):
    rows = results.rows("memory.csv")
    by = {(r["size"], r["mode"], r["stage"]): r for r in rows}

    def peaks(a, b):
        return "{:.0f} / {}".format(value(a, "peak_rss_mb"), "{:.0f}".format(value(b, "peak_rss_mb")) if b else "not run")

    def ratio(a, b, key):
        return times(value(a, key) / value(b, key)) if b and a.get(key) else "—"

    single, batch = [], []
    for size in OrderedDict((r["size"], None) for r in rows):
        tiled = (size, "tiled", "encode") in by
        modes = ("tiled", "untiled") if tiled else ("batch side by side", "batch one at a time")
        pairs = {stage: [by.get((size, mode, stage)) for mode in modes] for stage in ("encode", "decode")}
        cells = [size] + [peaks(*pairs[stage]) for stage in ("encode", "decode")]
        keys = ("transform_seconds", "seconds") if tiled else ("seconds",)
        cells += [ratio(pairs[stage][0], pairs[stage][1], key) for key in keys for stage in ("encode", "decode")]
        if tiled:
            untiled = pairs["encode"][1]
            cells.append("—" if not untiled else "yes, max abs diff {}".format(untiled["image_max_abs_diff"])
                         if untiled.get("identical_stream") == "1" else "no")
        (single if tiled else batch).append(cells)
    text = table(["image", "encode peak RSS tiled / untiled (MB)", "decode peak RSS tiled / untiled (MB)",
                  "encode transform time tiled / untiled", "decode transform time tiled / untiled",
                  "encode process time tiled / untiled", "decode process time tiled / untiled",
                  "identical streams and images"], single)
    if batch:
        text += "\n\n" + table(["batch", "encode peak RSS side by side / one at a time (MB)",
                                "decode peak RSS side by side / one at a time (MB)",
                                "encode time side by side / one at a time", "decode time side by side / one at a time"],
                               batch)
    return text + "\n\n({}; the fastest of {} rounds, the largest peak.)".format(source("memory.csv", rows), rows[0]["rounds"])


def throughput(results):
    rows = results.rows("throughput.csv")
    body = []
    for r in rows:
        share = value(r, "fraction_of_transform_rate")
        body.append((r["direction"], r["mode"], "{:.2f}".format(value(r, "frames_per_s")),
                     "{:.1f} ms".format(value(r, "median_s") / value(r, "images") * 1e3),
                     "—" if math.isnan(share) else "{} ({}–{})".format(
                         percent(share), percent(value(r, "lowest_round")), percent(value(r, "highest_round"))),
                     "{} × {}".format(r["frames_side_by_side"], r["threads_per_transform"]) if r["frames_side_by_side"] else "—",
                     r["mean_file_bytes"] or "—"))
    first = rows[0]
    return table(["", "mode", "frames/s", "per image", "of the transform-only rate (lowest–highest round)",
                  "frames side by side × threads each", "mean file bytes"], body) + (
        "\n\n({} {}×{} PNG photos, median of {} interleaved rounds; {}.)".format(
            first["images"], first["size"], first["size"], first["rounds"], source("throughput.csv", rows)))


def roi_loss(results):
    rows = results.rows("roi_loss.csv")
    by = {r["case"]: value(r, "mean") for r in rows}
    first = rows[0]
    vectorized, per_box, step = by["roi-loss-vectorized"], by["roi-loss-per-box"], by["training-step-128-2"]
    return ("For a batch of {batch} at {size}×{size} with {head_boxes} head and {person_boxes} person boxes per image, the "
            "vectorized ROI loss (forward + backward of both terms) takes {0}, {1} less than one crop per box ({2}), and "
            "{3} of a (128, 2) training step ({4:.1f} s) ({5}, torch {6}, {threads} threads).".format(
                ms(vectorized, 0), times(per_box / vectorized, 1), ms(per_box, 0), percent(vectorized / step, 2), step,
                source("roi_loss.csv", rows, ()), distinct(rows, "torch"), **first))


def _precision_rows(results):
    return sorted(precision.read_csv(results.path("precision_cpu.csv")), key=precision_report.sort_key)


def _reidentified(r):
    return "{:.0f}/{:.0f}".format(r["reid_matched"], r["reid_faces"]) if r["reid_faces"] else "—"


def _count(v):
    return "—" if math.isnan(v) else "{:.0f}".format(v)


def _optional(v, fmt):
    return "—" if math.isnan(v) else fmt.format(v)


def _precision_caption(rows):
    first = rows[0]
    return ("({} photos; faces: {} against face boxes, persons: {} against visible boxes, IoU {:g}; re-identified: {} "
            "distance < {:g}; `benchmarks/results/precision_cpu.csv`: {}.)".format(
                _count(first["images"]), first["face_detector"], first["person_detector"], first["iou_threshold"],
                first["reid_model"], first["reid_threshold"], machine([dict((k, str(v)) for k, v in first.items())])))


def precision_table(results):
    rows = _precision_rows(results)
    body = [(precision_report.label(r), _optional(r["bpp_mean"], "{:.3f}"), _optional(r["psnr_mean"], "{:.1f}"),
             "{} / {}".format(_count(r["face_tp"]), _count(r["face_fp"])), percent(r["face_ap"], 1),
             "{} / {}".format(_count(r["person_tp"]), _count(r["person_fp"])), percent(r["person_ap"], 1),
             _reidentified(r), _optional(r["reid_distance_median"], "{:.2f}") + _optional(
                 r["reid_distance_p10"], " [{:.2f}–") + _optional(r["reid_distance_p90"], "{:.2f}]"))
            for r in rows]
    return table(["method", "bpp", "PSNR (dB)", "faces found (TP / FP)", "face AP", "persons found (TP / FP)",
                  "person AP", "faces re-identified", "distance median [p10–p90]"], body) + "\n\n" + _precision_caption(rows)


def precision_headline(results):
    """The original, our codec, and every other method at its lowest quality (the strongest compression)."""
    rows = _precision_rows(results)
    lowest = {}
    for r in rows:
        quality = precision_report._quality(r["config"])
        if quality >= 0 and (r["method"] not in lowest or quality < lowest[r["method"]]):
            lowest[r["method"]] = quality
    kept = [r for r in rows if precision_report._quality(r["config"]) == lowest.get(r["method"], -1)]
    body = [(precision_report.label(r), _optional(r["bpp_mean"], "{:.3f}"), "{} of {}".format(
        _count(r["face_tp"]), _count(r["face_gt"])), _reidentified(r), _optional(r["reid_distance_median"], "{:.2f}"))
            for r in kept]
    return table(["method", "bpp", "faces still found", "faces re-identified", "median distance"], body) + "\n\n" + \
        _precision_caption(rows)


def audit(results):
    with open(results.path("precision_audit.txt"), encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    bundled = tuple(os.path.splitext(os.path.basename(p))[0] + "." for p in sample_photos())
    kept = [line for line in lines if line.startswith(bundled) and "distance" in line]
    kept += [line for line in lines if line and not line.split()[0].endswith(".png")]
    return "```\n{}\n```".format("\n".join(kept))


def _serve_runs(results, *runs):
    """The serve_load.csv rows of those runs (a CSV without the `run` column holds only load rows)."""
    return [r for r in results.rows("serve_load.csv") if r.get("run", "load") in runs]


def serve_load(results):
    rows = _serve_runs(results, "load")
    body = [(r["synthesis"], r["cameras"], "{:.2f}".format(value(r, "valid_frames_per_s")), times(value(r, "ratio_to_local")),
             "{:.2f} s".format(value(r, "latency_p50_ms") / 1e3), "{:.2f} s".format(value(r, "latency_p99_ms") / 1e3),
             r.get("max_batch") or "—",
             "yes" if r.get("all_valid_decoded_once") == "1" else "no",
             "{} of {}".format(r["invalid_refused"], r["invalid"]), r.get("max_abs_diff", "—"))
            for r in rows]
    return table(["synthesis", "cameras", "valid frames/s", "÷ one local process", "latency p50", "p99",
                  "largest batch", "each valid frame decoded once", "invalid refused", "max abs diff to local"],
                 body) + "\n\n({}; {} requests per camera.)".format(
        source("serve_load.csv", rows, ()), int(value(rows[0], "requests") / value(rows[0], "cameras")))


def serve_cost(results):
    """What one request costs the idle server: a camera frame, a 1080p frame, the costliest request the default
    budget admits, and the old default's worst case."""
    rows = _serve_runs(results, "cost")
    body = [(r["synthesis"], r["request"], r["image"], "{:,} B".format(int(value(r, "stream_bytes"))),
             "refused in {}".format(ms(value(r, "request_seconds"))) if r["refused"] == "1" else
             "{:.2f} s".format(value(r, "request_seconds")), times(value(r, "time_vs_1080p")),
             "{:.0f} MB".format(value(r, "server_rss_mb")), "{:.0f} MB".format(value(r, "server_rss_over_idle_mb")),
             times(value(r, "memory_vs_1080p"))) for r in rows]
    return table(["synthesis", "request", "image", "stream", "time", "÷ 1080p", "server peak RSS", "above idle",
                  "÷ 1080p"], body) + "\n\n({}; the median of {} requests each, the largest peak.)".format(
        source("serve_load.csv", rows, ()), int(value(rows[0], "requests")))


def serve_hostile(results):
    """Honest cameras' latency alone and while clients send the costliest admitted request back to back."""
    rows = _serve_runs(results, "alone", "hostile")
    body = [(r["synthesis"], r["cameras"], r.get("hostile_clients") or "0",
             "{:.2f} s".format(value(r, "latency_p50_ms") / 1e3), "{:.2f} s".format(value(r, "latency_p95_ms") / 1e3),
             times(value(r, "p50_vs_alone")), times(value(r, "p95_vs_alone")),
             "{:.2f}".format(value(r, "valid_frames_per_s")),
             "{} ({:.1f} s each)".format(r["hostile_requests"], value(r, "hostile_seconds"))
             if r.get("hostile_requests") else "—") for r in rows]
    return table(["synthesis", "honest cameras", "hostile clients", "honest p50", "p95", "p50 ÷ alone", "p95 ÷ alone",
                  "honest frames/s", "costly requests decoded"], body) + "\n\n({}.)".format(
        source("serve_load.csv", rows, ()))


def serve_faults(results):
    """The fault drill: servers and cameras killed while cameras stream, then every frame counted in the sink."""
    rows = [r for r in results.rows("serve_load.csv") if r.get("fault")]
    body = [(r["fault"], r["cameras"], r["frames"], r["sink_files"],
             "yes" if r["all_frames_decoded_once"] == "1" else "no", r["max_abs_diff"], r["sent_live"], r["spool_sent"],
             r["recovered"], r["dropped"], "{:.1f} s".format(value(r, "server_down_s")),
             "{:.1f} s".format(value(r, "backlog_s"))) for r in rows]
    return table(["faults", "cameras", "frames written", "in the sink", "each decoded once", "max abs diff to local",
                  "sent live*", "sent from spools*", "recovered*", "dropped", "server down",
                  "spools empty after the server is back"], body) + (
        "\n\n(* counted by the camera runs that ended; a killed run prints nothing. {}.)".format(
            source("serve_load.csv", rows, ())))


def provenance_columns(results):
    return ", ".join("`{}`".format(c) for c in PROVENANCE)


def tensorrt_targets(results):
    """The build targets as roi_trt/build/targets.py defines them (facts of the code, kept in one place)."""
    from roi_trt.backends.tensorrt.api import shape_text
    from roi_trt.build import targets
    from roi_trt.cuda import cc_text

    body = [(t.name, ", ".join(cc_text(cc) for cc in t.compute_capabilities) or "any other",
             "integrated (Jetson)" if t.jetson else "discrete", targets.tensorrt_text(t)[len("TensorRT "):],
             "{} MiB".format(t.workspace_bytes >> 20), shape_text(t.opt_image), shape_text(t.max_image))
            for t in list(targets.TARGETS.values()) + [targets.GENERIC]]
    return table(["target", "compute capability", "GPU", "TensorRT", "workspace", "opt image", "max image (batch x H x W)"],
                 body)


SECTIONS = OrderedDict([
    ("demo", demo), ("demo-summary", demo_summary), ("export-verification", export_verification),
    ("machines", machines), ("latency", latency), ("latency-codecs", latency_codecs), ("entropy-coding", entropy_coding),
    ("export-latency", export_latency), ("roofline", roofline), ("memory", memory), ("throughput", throughput),
    ("roi-loss", roi_loss), ("precision", precision_table), ("precision-headline", precision_headline),
    ("audit", audit), ("serve-load", serve_load), ("serve-cost", serve_cost), ("serve-hostile", serve_hostile),
    ("provenance-columns", provenance_columns),
    ("tensorrt-targets", tensorrt_targets), ("serve-faults", serve_faults),
])


# -- rewriting -------------------------------------------------------------------------------------------

class SectionError(Exception):
    pass


def render(text, results, generated=None):
    """`text` with every marked section regenerated -> (new text, names of the sections that changed)."""
    generated = {} if generated is None else generated
    names = MARKER.findall(text)
    whole = SECTION.findall(text)
    if len(names) != 2 * len(whole):
        raise SectionError("unbalanced or misnamed results markers: {}".format(", ".join(sorted(set(names)))))
    changed = []

    def replace(match):
        name = match.group("name")
        if name not in SECTIONS:
            raise SectionError("unknown section '{}' (known: {})".format(name, ", ".join(SECTIONS)))
        if name not in generated:
            generated[name] = SECTIONS[name](results).rstrip("\n") + "\n"
        if match.group("body") != generated[name]:
            changed.append(name)
        return "<!-- results:{0} -->\n{1}<!-- /results:{0} -->".format(name, generated[name])

    return SECTION.sub(replace, text), changed


def run(results, write, root=ROOT):
    """-> ['document: section', ...] that differ from the results, for the documents under `root`; when
    `write`, rewrites them (after every document rendered, so an error leaves all as they were)."""
    generated, drift, rewritten = {}, [], []
    for path in documents(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            new, changed = render(text, results, generated)
        except SectionError as exc:
            raise SectionError("{}: {}".format(os.path.relpath(path, root), exc))
        drift += ["{}: {}".format(os.path.relpath(path, root), name) for name in changed]
        if new != text:
            rewritten.append((path, new))
    for path, new in rewritten if write else ():
        write_bytes_atomic(path, new.encode("utf-8"))
    return drift


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a section differs.")
    args = parser.parse_args(argv)
    try:
        drift = run(Results(), write=not args.check)
    except (SectionError, OSError, KeyError, ValueError) as exc:
        print("Error: {}".format(exc), file=sys.stderr)
        return 2
    for line in drift:
        print(("differs from the results: " if args.check else "rewrote ") + line)
    return 1 if drift and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
