"""`roi-trt bench precision-report`: a precision CSV -> a Tab. I-style table (TP/FP of face detections
per method, with AP, re-identification and bpp) and Fig. 4-style plots (person AP, face AP,
re-identification rate and distance against bpp, log-scale bpp), optionally beside the paper's values
(`benchmarks/paper_precision.csv`: the paper's Tab. I and the numbers its text gives for Fig. 4)."""

import csv
import math
import os

from ..errors import RoiTrtError
from .privacy import THRESHOLD

PAPER_PRECISION = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "benchmarks", "paper_precision.csv")
FAMILY_ORDER = ("original", "roi-codec", "avif", "jpeg", "blur+avif", "blur+jpeg", "maskout+avif", "maskout+jpeg")
FAMILY_LABEL = {"original": "original (no codec)", "roi-codec": "ROI codec", "avif": "AVIF", "jpeg": "JPEG"}
FAMILY_STYLE = {
    "roi-codec": ("tab:red", "*"), "avif": ("tab:blue", "o"), "jpeg": ("tab:orange", "s"),
    "blur+avif": ("tab:cyan", "v"), "blur+jpeg": ("tab:olive", "v"), "maskout+avif": ("tab:purple", "D"),
    "maskout+jpeg": ("tab:brown", "D"),
}
NAN = float("nan")


def _isnan(v):
    return isinstance(v, float) and v != v


def family_label(method):
    if method in FAMILY_LABEL:
        return FAMILY_LABEL[method]
    mode, _, codec = method.partition("+")
    return "{} + {}".format(mode, FAMILY_LABEL.get(codec, codec)) if codec else method


def label(row):
    if row["method"] == "roi-codec":
        n, _, m = row["config"].partition("-")
        model = row.get("model") or ""
        return "ROI codec ({}, {}){}".format(n, m, " " + model if model and model != row["config"] else "")
    if row["method"] == "original":
        return FAMILY_LABEL["original"]
    return "{} {}".format(family_label(row["method"]), row["config"])


def _quality(config):
    return int(config[1:]) if config.startswith("q") and config[1:].isdigit() else -1


def sort_key(row):
    family = FAMILY_ORDER.index(row["method"]) if row["method"] in FAMILY_ORDER else len(FAMILY_ORDER)
    return (family, row["method"], _quality(row["config"]), row["config"], row.get("model") or "")


def load_paper(path=None):
    """The paper's values: rows of method, config, bpp, person_ap, face_ap, face_tp, face_fp, source (nan where
    the paper gives none; APs in [0, 1])."""
    path = path or PAPER_PRECISION
    if not os.path.isfile(path):
        raise RoiTrtError("{}: paper values not found (run from a source checkout or pass the CSV)".format(path))
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    if not rows or any(c not in rows[0] for c in ("method", "config", "bpp", "person_ap", "face_ap", "face_tp", "face_fp")):
        raise RoiTrtError("{}: not a paper precision file".format(path))
    for row in rows:
        for key in ("bpp", "person_ap", "face_ap", "face_tp", "face_fp"):
            row[key] = float(row[key]) if row[key] not in ("", None) else NAN
    return rows


def _pct(v, digits=1):
    return "-" if _isnan(v) else "{:.{d}f} %".format(100 * v, d=digits)


def _num(v, fmt="{:.0f}"):
    return "-" if _isnan(v) else fmt.format(v)


def _paper_matches(row, paper):
    return [p for p in paper or [] if p["method"] == row["method"] and p["config"] == row["config"]]


def table(rows, paper=None):
    """Lines of text: Tab. I-style (face TP/FP per method) with AP, re-identification and bpp."""
    rows = sorted(rows, key=sort_key)
    first = rows[0]
    lines = ["", "{} images; 'TP kept': face TP as a share of the original's; faces: {} vs head boxes, persons: {} vs visible boxes, IoU {}; re-identification: {} "
             "distance < {} (faces found on the original)".format(
                 _num(first["images"]), first.get("face_detector", "?"), first.get("person_detector", "?"),
                 _num(first["iou_threshold"], "{:g}"), first.get("reid_model") or "(not measured)", _num(first["reid_threshold"], "{:g}"))]
    head = "{:<30} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>15} {:>20}".format(
        "method", "bpp", "PSNR", "face TP", "face FP", "TP kept", "face AP", "person AP", "person TP", "re-identified",
        "distance med [p10-p90]")
    lines += [head, "-" * len(head)]
    original = next((r for r in rows if r["method"] == "original"), None)
    for r in rows:
        kept = "-" if original is None or not original["face_tp"] or _isnan(original["face_tp"]) else _pct(
            r["face_tp"] / original["face_tp"], 0)
        reid = "-" if _isnan(r["reid_faces"]) or not r["reid_faces"] else "{:.0f}/{:.0f} {}".format(
            r["reid_matched"], r["reid_faces"], _pct(r["reid_rate"], 0))
        dist = "-" if _isnan(r["reid_distance_median"]) else "{:.2f} [{:.2f}-{:.2f}]".format(
            r["reid_distance_median"], r["reid_distance_p10"], r["reid_distance_p90"])
        lines.append("{:<30} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>15} {:>20}".format(
            label(r)[:30], _num(r["bpp_mean"], "{:.3f}"), _num(r["psnr_mean"], "{:.1f}"), _num(r["face_tp"]), _num(r["face_fp"]),
            kept, _pct(r["face_ap"], 2), _pct(r["person_ap"]), "{}/{}".format(_num(r["person_tp"]), _num(r["person_fp"])), reid, dist))
        for p in _paper_matches(r, paper):
            lines.append("{:<30} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}".format(
                "  vs " + p.get("source", "paper"), _num(p["bpp"], "{:.2f}"), "", _num(p["face_tp"]), _num(p["face_fp"]), "",
                _pct(p["face_ap"], 2), _pct(p["person_ap"])))
    if paper:
        lines.append("")
        lines.append("paper rows: CrowdHuman val (4370 images) with YOLOv8x and MTCNN; its 'AV1' rows are set beside our AVIF "
                     "rows at the same quality. Counts scale with the data set: compare ratios, not totals.")
    return lines


def _minor_tick(value, _):
    """Label the 2, 3 and 5 of each decade on a log axis."""
    if value <= 0:
        return ""
    leading = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return "{:g}".format(value) if int(round(leading)) in (2, 3, 5) else ""


def plot(rows, path, paper=None, replace=True):
    """Fig. 4-style 2x2 panels against bpp (log scale): person AP, face AP, re-identification rate, and the
    re-identification distance (median, p10-p90) with the threshold; the original as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from ..fileio import save_png

    rows = sorted(rows, key=sort_key)
    panels = (("person_ap", "person AP [%]", 100), ("face_ap", "face AP [%]", 100),
              ("reid_rate", "faces re-identified [%]", 100), ("reid_distance_median", "re-identification distance", 1))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, (key, ylabel, scale) in zip(axes.ravel(), panels):
        original = [r for r in rows if r["method"] == "original"]
        if original and not _isnan(original[0][key]) and key != "reid_distance_median":
            ax.axhline(original[0][key] * scale, color="black", linestyle="--", linewidth=1, label="original (no codec)")
        families = [f for f in FAMILY_ORDER if f != "original"] + sorted({r["method"] for r in rows} - set(FAMILY_ORDER))
        for family in families:
            here = [r for r in rows if r["method"] == family and not _isnan(r["bpp_mean"]) and not _isnan(r[key])]
            if not here:
                continue
            color, marker = FAMILY_STYLE.get(family, ("tab:gray", "x"))
            xs, ys = [r["bpp_mean"] for r in here], [r[key] * scale for r in here]
            if key == "reid_distance_median":
                low = [(r[key] - r["reid_distance_p10"]) * scale for r in here]
                high = [(r["reid_distance_p90"] - r[key]) * scale for r in here]
                ax.errorbar(xs, ys, yerr=[low, high], color=color, marker=marker, linestyle="-" if family != "roi-codec" else "none",
                            capsize=3, markersize=9 if family == "roi-codec" else 5, label=family_label(family))
            else:
                ax.plot(xs, ys, color=color, marker=marker, linestyle="-" if family != "roi-codec" else "none",
                        markersize=11 if family == "roi-codec" else 5, label=family_label(family))
            for r, x, y in zip(here, xs, ys):
                text = r["config"] if family != "roi-codec" else "({}) {}".format(r["config"].replace("-", ", "), r.get("model") or "")
                ax.annotate(text.strip(), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        paper_key = {"person_ap": "person_ap", "face_ap": "face_ap"}.get(key)
        if paper and paper_key:
            shown = False
            for p in paper:
                if _isnan(p["bpp"]) or _isnan(p[paper_key]):
                    continue
                color, marker = FAMILY_STYLE.get(p["method"], ("tab:gray", "x"))
                ax.plot([p["bpp"]], [p[paper_key] * scale], marker=marker, markerfacecolor="none", markeredgecolor=color,
                        markersize=10, linestyle="none", label=None if shown else "paper (CrowdHuman val, hollow)")
                ax.annotate("paper " + (p["config"].replace("-", ", ") if p["method"] == "roi-codec" else p["config"]),
                            (p["bpp"], p[paper_key] * scale), textcoords="offset points", xytext=(4, -10), fontsize=6, color=color)
                shown = True
        if key == "reid_distance_median":
            threshold = next((r["reid_threshold"] for r in rows if not _isnan(r["reid_threshold"])), THRESHOLD)
            ax.axhline(threshold, color="tab:red", linestyle=":", linewidth=1, label="threshold {:g}".format(threshold))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "{:g}".format(v)))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_minor_tick))
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    first = rows[0]
    fig.suptitle("persons: {}, faces: {}, re-identification: {} ({} images)".format(
        first.get("person_detector", "?"), first.get("face_detector", "?"), first.get("reid_model") or "-",
        _num(first["images"])), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    save_png(fig, path, replace)
    plt.close(fig)
