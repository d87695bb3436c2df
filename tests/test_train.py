import csv
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from roi_trt.checkpoint import load_checkpoint
from roi_trt.cli import main
from roi_trt.errors import RoiTrtError
from roi_trt.train.data import DataReport, RoiDataset, collate, parse_odgt
from roi_trt.train.losses import bits_per_pixel, box_mse, roi_loss, total_loss


def direct_roi_loss(x, x_hat, box_lists, k):
    """The definition, one box at a time."""
    total = 0.0
    for i, boxes in enumerate(box_lists):
        if not boxes:
            continue
        terms = []
        for x0, y0, x1, y1 in boxes:
            mse = F.mse_loss(x_hat[i, :, y0:y1, x0:x1], x[i, :, y0:y1, x0:x1]).item()
            terms.append(1 - mse if k == 1 else mse)
        total += sum(terms) / len(terms)
    return total / x.shape[0]


def padded(box_lists):
    K = max(len(b) for b in box_lists) or 1
    boxes = torch.zeros(len(box_lists), K, 4, dtype=torch.int64)
    valid = torch.zeros(len(box_lists), K, dtype=torch.bool)
    for i, b in enumerate(box_lists):
        if b:
            boxes[i, : len(b)] = torch.tensor(b)
            valid[i, : len(b)] = True
    return boxes, valid


@pytest.mark.parametrize("k", [0, 1])
def test_roi_loss_matches_direct_computation(k):
    g = torch.Generator().manual_seed(k)
    x, x_hat = torch.rand(4, 3, 512, 512, generator=g), torch.rand(4, 3, 512, 512, generator=g)
    box_lists = [
        [[0, 0, 512, 512], [500, 500, 512, 512], [0, 300, 7, 512]],  # whole image, corner, left border
        [],  # no boxes: contributes 0
        [[10, 20, 11, 21]],  # a single pixel
        [[int(a), int(b), int(a) + int(w), int(b) + int(h)] for a, b, w, h in torch.randint(0, 250, (40, 4), generator=g)],
    ]
    boxes, valid = padded(box_lists)
    got = roi_loss(x, x_hat, boxes, valid, k).item()
    assert got == pytest.approx(direct_roi_loss(x, x_hat, box_lists, k), rel=1e-5, abs=1e-7)


def test_roi_loss_gradient_flows_only_through_boxes():
    x = torch.rand(1, 3, 32, 32)
    x_hat = torch.rand(1, 3, 32, 32, requires_grad=True)
    boxes, valid = padded([[[4, 4, 8, 8]]])
    roi_loss(x, x_hat, boxes, valid, 1).backward()
    assert x_hat.grad[..., 4:8, 4:8].abs().sum() > 0
    grad = x_hat.grad.clone()
    grad[..., 4:8, 4:8] = 0
    assert grad.abs().sum() == 0


def test_box_mse_zero_area_is_zero():
    x = torch.rand(1, 3, 8, 8)
    assert box_mse(x, x + 1, torch.tensor([[[3, 3, 3, 6]]])).item() == 0


def test_total_loss_weights_the_terms():
    x, x_hat = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    likelihoods = torch.full((2, 8, 2, 2), 0.5)
    hb, hv = padded([[[0, 0, 8, 8]], []])
    vb, vv = padded([[[0, 0, 16, 16]], [[2, 2, 6, 6]]])
    loss, parts = total_loss(x, x_hat, likelihoods, hb, hv, vb, vv)
    assert parts["bpp"] == pytest.approx(2 * 8 * 4 / (2 * 16 * 16))
    assert bits_per_pixel(likelihoods, 2 * 16 * 16).item() == pytest.approx(parts["bpp"])
    expected = 0.04 * parts["bpp"] + parts["mse"] + 0.6 * parts["hbox"] + parts["vbox"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def write_fixture(tmp_path):
    images = tmp_path / "Images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a", (200, 100)), ("b", (64, 64)), ("c", (80, 120))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(str(images / f"{name}.jpg"))
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    lines = [
        {"ID": "a", "gtboxes": [
            {"tag": "person", "hbox": [10, 10, 20, 30], "vbox": [0, 0, 100, 100], "head_attr": {"ignore": 0}, "extra": {"ignore": 0}},
            {"tag": "person", "hbox": [50, 50, 10, 10], "vbox": [150, 20, 200, 90], "head_attr": {"ignore": 1}, "extra": {"ignore": 0}},
            {"tag": "mask", "hbox": [0, 0, 5, 5], "vbox": [0, 0, 5, 5]},
            {"tag": "person", "hbox": [300, 300, 10, 10], "vbox": [5, 5, 10, 10], "head_attr": {}, "extra": {"ignore": 1}},
        ]},
        {"ID": "b", "gtboxes": []},
        {"ID": "missing", "gtboxes": []},
        {"ID": "broken", "gtboxes": []},
        "this is not json",
        {"ID": "c", "gtboxes": [{"tag": "person", "hbox": [1, 2, 3]}]},
        {"gtboxes": []},
    ]
    odgt = tmp_path / "annotation_train.odgt"
    odgt.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return str(images), str(odgt)


def test_odgt_parsing_and_dataset_edge_cases(tmp_path):
    images, odgt = write_fixture(tmp_path)
    report = DataReport()
    records = parse_odgt(odgt, report)
    assert [r[0] for r in records] == ["a", "b", "missing", "broken"]
    assert report.counts["malformed lines"] == 3
    a = records[0]
    assert a[1] == [[10.0, 10.0, 30.0, 40.0], [300.0, 300.0, 310.0, 310.0]]  # ignored head and mask left out
    assert a[2] == [[0.0, 0.0, 100.0, 100.0], [150.0, 20.0, 350.0, 110.0]]  # ignored person left out

    ds = RoiDataset(images, odgt, size=50)
    assert [os.path.basename(p) for p, _, _ in ds.items] == ["a.jpg", "b.jpg"]
    assert ds.report.counts["missing images"] == 1
    assert ds.report.counts["unreadable images"] == 1
    assert ds.report.counts["empty or outside boxes"] == 1  # the head at (300, 300) in a 200x100 image
    _, hboxes, vboxes = ds.items[0]
    # 200x100 -> 50x50: x scaled by 1/4, y by 1/2, rounded outward, clipped to the image
    assert hboxes == [[2, 5, 8, 20]]
    assert vboxes == [[0, 0, 25, 50], [37, 10, 50, 50]]
    assert any("malformed lines: 3" in line for line in ds.report.lines())

    x, hb, hv, vb, vv = collate([ds[0], ds[1]])
    assert x.shape == (2, 3, 50, 50) and hb.shape == (2, 1, 4) and vb.shape == (2, 2, 4)
    assert hv.tolist() == [[True], [False]] and vv.tolist() == [[True, True], [False, False]]


def test_plain_folder_and_empty_folder(tmp_path):
    images, _ = write_fixture(tmp_path)
    ds = RoiDataset(images, None, size=32)
    assert len(ds) == 3 and all(not h and not v for _, h, v in ds.items)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RoiTrtError, match="no usable images"):
        RoiDataset(str(tmp_path / "empty"))


def test_short_training_run_decreases_loss_and_exports(tmp_path):
    images, odgt = write_fixture(tmp_path)
    out = tmp_path / "run"
    args = ["train", images, "--annotations", odgt, "-o", str(out), "-N", "16", "-M", "1", "--size", "32",
            "--batch-size", "2", "--max-steps", "40", "--lr", "3e-3", "--checkpoint-every", "15", "--epochs", "100"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "skipped missing images: 1" in result.output
    with open(str(out / "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and set(rows[0]) >= {"loss", "bpp", "mse", "hbox", "vbox", "aux", "images_per_s"}
    first, last = np.mean([float(r["loss"]) for r in rows[:5]]), np.mean([float(r["loss"]) for r in rows[-5:]])
    assert last < first
    assert (out / "loss_curves.png").stat().st_size > 1000
    raw = torch.load(str(out / "last.pt"), weights_only=True)
    assert {"state_dict", "N", "M", "config", "history", "optimizer"} <= set(raw) and raw["step"] == 40
    # history: per-epoch means (2 images per epoch -> one step each), bounded whatever the run length
    assert [h["epoch"] for h in raw["history"]] == list(range(40))
    assert raw["history"][-1]["loss"] == pytest.approx(float(rows[-1]["loss"]), rel=1e-5)
    model, info = load_checkpoint(str(out / "last.pt"))
    assert (info.N, info.M) == (16, 1)

    resumed = CliRunner().invoke(main, args[:-4] + ["--max-steps", "5", "--resume", str(out / "last.pt")])
    assert resumed.exit_code == 0, resumed.output
    resumed_raw = torch.load(str(out / "last.pt"), weights_only=True)
    assert resumed_raw["step"] == 45 and len(resumed_raw["history"]) == 45
    with open(str(out / "log.csv")) as f:
        assert len(list(csv.DictReader(f))) == 45  # the log continues across the resume

    exported = CliRunner().invoke(main, ["export", str(out / "last.pt"), "-o", str(tmp_path / "exp")])
    assert exported.exit_code == 0, exported.output
