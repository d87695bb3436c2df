"""CrowdHuman as distributed (`<ID>.jpg` + `annotation_*.odgt`, parsed torch-free in
`roi_trt.datasets.crowdhuman`), or a plain folder of images.

Problems in the data (malformed lines, missing images, boxes outside the image) are counted and
reported with examples, and the affected items skipped: a long run never dies on one bad record.
"""

import os

import torch
from PIL import Image

from ..datasets.crowdhuman import DataReport, parse_odgt, scale_boxes  # noqa: F401 (DataReport, parse_odgt: public here too)
from ..errors import RoiTrtError
from ..imageio import IMAGE_SUFFIXES, load_rgb, resize


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
