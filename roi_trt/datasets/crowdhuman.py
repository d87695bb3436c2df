"""CrowdHuman annotations (`annotation_*.odgt`) as distributed, torch-free (Python 3.6).

One JSON object per line: `{"ID": ..., "gtboxes": [{"tag": "person"|"mask", "hbox": [x, y, w, h],
"vbox": [...], "head_attr": {"ignore": 0|1}, "extra": {"ignore": 0|1}}]}`, images `<ID>.jpg`.
Training (`roi_trt.train.data`) and the precision benchmark (`roi_trt.bench.precision`) both read it
here. Problems (malformed lines, boxes outside the image) are counted in a `DataReport` with examples
and the affected records skipped: a long run never dies on one bad record.
"""

import json
import os
from collections import Counter, OrderedDict

from ..imageio import IMAGE_SUFFIXES


class DataReport(object):
    """Counts of skipped things, with the first few examples of each."""

    def __init__(self, examples=3):
        self.counts = Counter()
        self.examples = OrderedDict()
        self.max_examples = examples

    def add(self, kind, example):
        self.counts[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < self.max_examples:
            self.examples[kind].append(str(example))

    def lines(self):
        return ["{}: {} (e.g. {})".format(kind, n, "; ".join(self.examples[kind])) for kind, n in self.counts.items()]


def xywh_to_xyxy(box):
    """CrowdHuman's [x, y, w, h] -> [x0, y0, x1, y1] floats; ValueError for anything else."""
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ValueError("box is not [x, y, w, h]")
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def iter_odgt(path, report):
    """Yield (ID, hboxes, vboxes) per line, boxes as [x0, y0, x1, y1] in original pixels, streaming.

    Uses `person` entries only (`mask` entries mark crowds/reflections); a head box flagged
    `head_attr.ignore` and a person box flagged `extra.ignore` are left out. Malformed lines are
    counted in `report` ("malformed lines") and skipped.
    """
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                image_id = str(entry["ID"])
                hboxes, vboxes = [], []
                for gt in entry.get("gtboxes", []):
                    if gt.get("tag") != "person":
                        continue
                    if "hbox" in gt and not gt.get("head_attr", {}).get("ignore", 0):
                        hboxes.append(xywh_to_xyxy(gt["hbox"]))
                    if "vbox" in gt and not gt.get("extra", {}).get("ignore", 0):
                        vboxes.append(xywh_to_xyxy(gt["vbox"]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                report.add("malformed lines", "{}:{} ({})".format(name, line_no, exc))
                continue
            yield image_id, hboxes, vboxes


def parse_odgt(path, report):
    """-> list of (ID, hboxes, vboxes): `iter_odgt` collected."""
    return list(iter_odgt(path, report))


def scale_boxes(boxes, from_size, to_size, report, where):
    """Scale [x0, y0, x1, y1] boxes from (w, h) to (w', h'), round outward to integers, clip, drop empty
    ones (counted as "empty or outside boxes"). What training uses: box crops need whole pixels."""
    import math

    (w, h), (tw, th) = from_size, to_size
    out = []
    for box in boxes:
        x0, y0, x1, y1 = box
        sx, sy = tw / float(w), th / float(h)
        x0, x1 = int(math.floor(x0 * sx)), int(math.ceil(x1 * sx))
        y0, y1 = int(math.floor(y0 * sy)), int(math.ceil(y1 * sy))
        x0, x1 = max(0, min(x0, tw)), max(0, min(x1, tw))
        y0, y1 = max(0, min(y0, th)), max(0, min(y1, th))
        if x1 <= x0 or y1 <= y0:
            report.add("empty or outside boxes", "{} {}".format(where, [round(v, 1) for v in box]))
            continue
        out.append([x0, y0, x1, y1])
    return out


def resize_boxes(boxes, from_size, to_size, report=None, where=""):
    """Scale [x0, y0, x1, y1] boxes from (w, h) to (w', h') in floats and clip them to the image, as the
    paper's evaluation does with its ground truth; boxes left empty are dropped (and counted)."""
    (w, h), (tw, th) = from_size, to_size
    sx, sy = tw / float(w), th / float(h)
    out = []
    for x0, y0, x1, y1 in boxes:
        box = [min(max(x0 * sx, 0.0), tw), min(max(y0 * sy, 0.0), th), min(max(x1 * sx, 0.0), tw), min(max(y1 * sy, 0.0), th)]
        if box[2] <= box[0] or box[3] <= box[1]:
            if report is not None:
                report.add("empty or outside boxes", "{} {}".format(where, [round(v, 1) for v in (x0, y0, x1, y1)]))
            continue
        out.append(box)
    return out


def find_image(directories, image_id, suffixes=IMAGE_SUFFIXES):
    """`<ID>.jpg` (CrowdHuman's naming) in the first directory that has it, else `<ID>` with another image
    suffix; None when there is none."""
    for directory in directories:
        for suffix in (".jpg",) + tuple(s for s in suffixes if s != ".jpg"):
            path = os.path.join(directory, image_id + suffix)
            if os.path.isfile(path):
                return path
    return None
