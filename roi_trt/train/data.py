"""CrowdHuman as distributed (`<ID>.jpg` + `annotation_*.odgt`), or a plain folder of images.

Problems in the data (malformed lines, missing images, boxes outside the image) are counted and
reported with examples, and the affected items skipped: a long run never dies on one bad record.
"""

import json
import os
from collections import Counter, OrderedDict

import numpy as np
import torch
from PIL import Image

from ..errors import RoiTrtError
from ..imageio import IMAGE_SUFFIXES, load_rgb, resize


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


def _xywh(box):
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ValueError("box is not [x, y, w, h]")
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def parse_odgt(path, report):
    """-> list of (ID, hboxes, vboxes) with boxes as [x0, y0, x1, y1] in original pixels.

    Uses `person` entries only (`mask` entries mark crowds/reflections); a head box flagged
    `head_attr.ignore` and a person box flagged `extra.ignore` are left out.
    """
    records = []
    with open(path) as f:
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
                        hboxes.append(_xywh(gt["hbox"]))
                    if "vbox" in gt and not gt.get("extra", {}).get("ignore", 0):
                        vboxes.append(_xywh(gt["vbox"]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                report.add("malformed lines", "{}:{} ({})".format(os.path.basename(path), line_no, exc))
                continue
            records.append((image_id, hboxes, vboxes))
    return records


def scale_boxes(boxes, from_size, to_size, report, where):
    """Scale [x0, y0, x1, y1] boxes from (w, h) to (w', h'), round outward, clip, drop empty ones."""
    (w, h), (tw, th) = from_size, to_size
    out = []
    for box in boxes:
        x0, y0, x1, y1 = box
        sx, sy = tw / float(w), th / float(h)
        x0, x1 = int(np.floor(x0 * sx)), int(np.ceil(x1 * sx))
        y0, y1 = int(np.floor(y0 * sy)), int(np.ceil(y1 * sy))
        x0, x1 = max(0, min(x0, tw)), max(0, min(x1, tw))
        y0, y1 = max(0, min(y0, th)), max(0, min(y1, th))
        if x1 <= x0 or y1 <= y0:
            report.add("empty or outside boxes", "{} {}".format(where, [round(v, 1) for v in box]))
            continue
        out.append([x0, y0, x1, y1])
    return out


class RoiDataset(torch.utils.data.Dataset):
    """Images resized to size x size (antialiased), with head and person boxes scaled and clipped alike.

    annotations=None: every image of `image_dir`, without boxes (rate and background terms only).
    """

    def __init__(self, image_dir, annotations=None, size=512, flip=False):
        self.size, self.flip = int(size), flip
        self.report = DataReport()
        if not os.path.isdir(image_dir):
            raise RoiTrtError("{}: no such image directory".format(image_dir))
        if annotations:
            if not os.path.isfile(annotations):
                raise RoiTrtError("{}: no such annotation file".format(annotations))
            candidates = [(os.path.join(image_dir, i + ".jpg"), h, v) for i, h, v in parse_odgt(annotations, self.report)]
        else:
            names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_SUFFIXES))
            candidates = [(os.path.join(image_dir, n), [], []) for n in names]
        self.items = []
        for path, hboxes, vboxes in candidates:
            try:
                with Image.open(path) as img:
                    original = img.size
            except OSError as exc:
                kind = "missing images" if not os.path.exists(path) else "unreadable images"
                self.report.add(kind, "{} ({})".format(os.path.basename(path), type(exc).__name__))
                continue
            target = (self.size, self.size)
            name = os.path.basename(path)
            self.items.append(
                (
                    path,
                    scale_boxes(hboxes, original, target, self.report, name),
                    scale_boxes(vboxes, original, target, self.report, name),
                )
            )
        if not self.items:
            raise RoiTrtError("{}: no usable images ({})".format(image_dir, "; ".join(self.report.lines()) or "empty"))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        path, hboxes, vboxes = self.items[index]
        try:
            rgb, _ = load_rgb(path)
        except RoiTrtError:
            return None  # dropped by collate(); counted at construction when the header was unreadable
        x = torch.from_numpy(resize(rgb, (self.size, self.size)).transpose(2, 0, 1).copy()).float() / 255.0
        h = torch.tensor(hboxes, dtype=torch.int64).reshape(-1, 4)
        v = torch.tensor(vboxes, dtype=torch.int64).reshape(-1, 4)
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
            h, v = _flip(h, self.size), _flip(v, self.size)
        return x, h, v


def _flip(boxes, width):
    flipped = boxes.clone()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return flipped


def _pad(box_lists):
    K = max([len(b) for b in box_lists] + [1])
    boxes = torch.zeros(len(box_lists), K, 4, dtype=torch.int64)
    valid = torch.zeros(len(box_lists), K, dtype=torch.bool)
    for i, b in enumerate(box_lists):
        boxes[i, : len(b)] = b
        valid[i, : len(b)] = True
    return boxes, valid


def collate(batch):
    """Stack images; pad each image's boxes to the batch maximum with a validity mask."""
    batch = [item for item in batch if item is not None]
    if not batch:
        return None
    x = torch.stack([item[0] for item in batch])
    hboxes, hvalid = _pad([item[1] for item in batch])
    vboxes, vvalid = _pad([item[2] for item in batch])
    return x, hboxes, hvalid, vboxes, vvalid
