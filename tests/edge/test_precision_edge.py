"""The precision harness's torch-free parts: Pascal VOC AP/TP/FP, CrowdHuman ground truth, blur and
mask-out, the harness itself with stand-in detectors, its CSV and report (Python 3.6, no torch)."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from roi_trt.bench import precision
from roi_trt.bench.anonymize import AnonymizeThenCompress, blur_regions, gaussian_kernel, mask_regions, pixel_box
from roi_trt.bench.detectors import Detector, Found, open_detector
from roi_trt.bench.methods import PillowCodecMethod
from roi_trt.bench.precision_report import load_paper, table
from roi_trt.bench.privacy import EXIT_STATUS, Audit, AuditGate, AuditResult, distance_summary
from roi_trt.bench.voc_ap import Detection, all_point_ap, evaluate, iou
from roi_trt.datasets.crowdhuman import DataReport, find_image, iter_odgt, parse_odgt, resize_boxes
from roi_trt.errors import UsageError

# The paper's values live in the source tree (the Python 3.6 suite runs an installed package from it).
PAPER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks",
                     "paper_precision.csv")

# -- Pascal VOC AP, hand-computed


def test_iou_counts_pixels_inclusively_like_the_toolkit():
    assert iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150.0)  # 5x10 of 10x10 + 10x10 - 50
    assert iou([0, 0, 9, 9], [9, 0, 18, 9]) == pytest.approx(10 / 190.0)  # touching: one shared pixel column
    assert iou([0, 0, 9, 9], [11, 0, 20, 9]) == 0.0


def test_ap_tp_fp_on_a_hand_computed_case():
    gt = {"a": [[0, 0, 9, 9], [20, 20, 29, 29]], "b": [[0, 0, 9, 9]]}
    dets = [
        Detection("a", 0.9, [0, 0, 9, 9]),      # TP (a0)
        Detection("b", 0.8, [50, 50, 59, 59]),  # FP: no overlap
        Detection("a", 0.7, [20, 20, 29, 29]),  # TP (a1)
        Detection("a", 0.6, [0, 0, 9, 9]),      # FP: a0 already taken
        Detection("b", 0.5, [1, 1, 10, 10]),    # TP (b0), IoU 81/119 >= 0.5
    ]
    r = evaluate(list(reversed(dets)), gt)  # input order does not matter without ties
    assert (r.tp, r.fp, r.positives) == (3, 2, 3)
    assert r.precision == pytest.approx([1, 1 / 2.0, 2 / 3.0, 2 / 4.0, 3 / 5.0])
    assert r.recall == pytest.approx([1 / 3.0, 1 / 3.0, 2 / 3.0, 2 / 3.0, 1])
    # all-point: 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45
    assert r.ap == pytest.approx(34 / 45.0)


def test_ties_in_confidence_keep_the_input_order():
    gt = {"a": [[0, 0, 9, 9]]}
    miss, hit = Detection("a", 0.8, [40, 40, 49, 49]), Detection("a", 0.8, [0, 0, 9, 9])
    first_miss = evaluate([miss, hit], gt)
    first_hit = evaluate([hit, miss], gt)
    assert (first_miss.tp, first_miss.fp) == (first_hit.tp, first_hit.fp) == (1, 1)
    assert first_miss.ap == pytest.approx(0.5)  # precision 1/2 at recall 1
    assert first_hit.ap == pytest.approx(1.0)


def test_no_detections_no_ground_truth_and_duplicates():
    gt = {"a": [[0, 0, 9, 9]], "b": []}
    none = evaluate([], gt)
    assert (none.ap, none.tp, none.fp, none.positives) == (0.0, 0, 0, 1)
    no_gt = evaluate([Detection("a", 0.9, [0, 0, 9, 9]), Detection("c", 0.3, [0, 0, 5, 5])], {"a": [], "b": []})
    assert math.isnan(no_gt.ap) and (no_gt.tp, no_gt.fp, no_gt.positives) == (0, 2, 0)
    dup = evaluate([Detection("a", s, [0, 0, 9, 9]) for s in (0.9, 0.8, 0.7)], gt)
    assert (dup.tp, dup.fp) == (1, 2) and dup.ap == pytest.approx(1.0)
    # detections in an image without ground truth are false positives; IoU exactly 0.5 is a match
    half = evaluate([Detection("b", 0.9, [0, 0, 9, 9]), Detection("a", 0.5, [0, 0, 9, 19])], gt)
    assert (half.tp, half.fp) == (1, 1) and half.ap == pytest.approx(0.5)


def test_a_detection_matches_its_best_box_only():
    gt = {"a": [[0, 0, 9, 9], [4, 0, 13, 9]]}
    # best IoU is with the second box, which is taken by the first detection: a duplicate, not a match of box 1
    r = evaluate([Detection("a", 0.9, [4, 0, 13, 9]), Detection("a", 0.8, [3, 0, 12, 9])], gt)
    assert (r.tp, r.fp) == (1, 1)
    assert all_point_ap([0.5, 0.5], [1.0, 0.5]) == pytest.approx(0.5)


# -- CrowdHuman ground truth


def write_odgt(path, lines):
    with open(str(path), "w") as f:
        f.write("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return str(path)


def test_odgt_to_ground_truth(tmp_path):
    odgt = write_odgt(tmp_path / "val.odgt", [
        {"ID": "a", "gtboxes": [
            {"tag": "person", "hbox": [10, 10, 20, 30], "vbox": [0, 0, 100, 100], "head_attr": {"ignore": 0}, "extra": {"ignore": 0}},
            {"tag": "person", "hbox": [50, 50, 10, 10], "vbox": [150, 20, 200, 90], "head_attr": {"ignore": 1}, "extra": {}},
            {"tag": "mask", "hbox": [0, 0, 5, 5], "vbox": [0, 0, 5, 5]},
            {"tag": "person", "hbox": [300, 300, 10, 10], "vbox": [5, 5, 10, 10], "extra": {"ignore": 1}},
        ]},
        "",
        "not json",
        {"ID": "b"},
        {"ID": "c", "gtboxes": [{"tag": "person", "hbox": [1, 2, 3]}]},
    ])
    report = DataReport()
    records = list(iter_odgt(odgt, report))
    assert records == parse_odgt(odgt, DataReport())
    assert [r[0] for r in records] == ["a", "b"]
    assert report.counts["malformed lines"] == 2 and "val.odgt:3" in report.lines()[0]
    _, heads, persons = records[0]
    assert heads == [[10.0, 10.0, 30.0, 40.0], [300.0, 300.0, 310.0, 310.0]]  # ignored head and mask left out
    assert persons == [[0.0, 0.0, 100.0, 100.0], [150.0, 20.0, 350.0, 110.0]]  # ignored person left out
    # evaluation scales in floats and clips (the paper's protocol); the head at (300, 300) falls outside 200x100
    report = DataReport()
    assert resize_boxes(heads, (200, 100), (50, 50), report, "a") == [[2.5, 5.0, 7.5, 20.0]]
    assert resize_boxes(persons, (200, 100), (50, 50)) == [[0.0, 0.0, 25.0, 50.0], [37.5, 10.0, 50.0, 50.0]]
    assert report.counts["empty or outside boxes"] == 1
    # images: <ID>.jpg first (CrowdHuman), then other suffixes, across directories
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    Image.new("RGB", (4, 4)).save(str(tmp_path / "d2" / "a.png"))
    Image.new("RGB", (4, 4)).save(str(tmp_path / "d2" / "a.jpg"))
    dirs = [str(tmp_path / "d1"), str(tmp_path / "d2")]
    assert find_image(dirs, "a") == str(tmp_path / "d2" / "a.jpg")
    assert find_image(dirs, "b") is None


# -- blur and mask-out


def checkerboard(h=64, w=80):
    y, x = np.mgrid[:h, :w]
    return np.stack([((x // 4 + y // 4) % 2) * 255] * 3, axis=-1).astype(np.uint8)


def test_kernel_follows_the_baseline():
    k = gaussian_kernel(7)
    assert len(k) == 21 and k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1]) and k.argmax() == 10
    assert len(gaussian_kernel(12)) == 37


def test_blur_changes_only_the_boxes_and_smooths_them():
    img = checkerboard()
    out = blur_regions(img, [[10.4, 8, 40, 30.2]])
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert pixel_box([10.4, 8, 40, 30.2], 64, 80) == (10, 8, 40, 31)  # widened to whole pixels
    inside = out[8:31, 10:40].astype(int)
    assert np.abs(inside - 127.5).max() < 20  # a 4-pixel checkerboard under sigma 7 is nearly flat grey
    mask = np.ones(img.shape[:2], bool)
    mask[8:31, 10:40] = False
    assert np.array_equal(out[mask], img[mask])
    assert np.array_equal(img, checkerboard())  # the input is left alone
    flat = np.full((30, 30, 3), 77, np.uint8)
    assert np.array_equal(blur_regions(flat, [[0, 0, 30, 30]]), flat)  # normalized, edges replicated
    assert np.array_equal(blur_regions(img, [[-20, -20, -1, -1], [90, 0, 99, 10]]), img)  # outside: nothing


def test_maskout_sets_127_inside_only():
    img = checkerboard()
    out = mask_regions(img, [[0, 0, 5.5, 5], [70, 60, 200, 200]])
    assert (out[:5, :6] == 127).all() and (out[60:, 70:] == 127).all()
    assert np.array_equal(out[10:50, 10:60], img[10:50, 10:60])


# -- the harness with stand-in detectors (what a detector is does not matter to the bookkeeping)


class BrightSquares(Detector):
    """Finds the bounding box of pixels brighter than 200, if any (score 0.9)."""

    def __init__(self, kind, name):
        self.kind, self.name = kind, name

    def detect(self, rgb):
        ys, xs = np.nonzero(rgb.min(axis=2) > 200)
        if not len(xs):
            return []
        return [Found([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)], 0.9)]


class PixelEmbedder(object):
    """Distance = mean absolute pixel change in the face box / 100."""

    name = "pixels"

    def references(self, original, boxes):
        return [(box, original) for box in boxes]

    def distances(self, decoded, refs):
        out = []
        for box, original in refs:
            x0, y0, x1, y1 = (int(v) for v in box)
            out.append(float(np.abs(decoded[y0:y1, x0:x1].astype(int) - original[y0:y1, x0:x1].astype(int)).mean()) / 100)
        return out


@pytest.fixture()
def dataset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        rgb = np.full((96, 128, 3), 40, np.uint8)
        rgb[20:52, 30 + 10 * i:62 + 10 * i] = 240  # the "face"
        Image.fromarray(rgb).save(str(images / "img{}.png".format(i)))
    Image.new("RGB", (64, 64)).save(str(images / "empty.jpg"))
    with open(str(images / "broken.jpg"), "wb") as f:
        f.write(b"not an image")
    lines = [{"ID": "img{}".format(i), "gtboxes": [{"tag": "person", "hbox": [30 + 10 * i, 20, 32, 32], "vbox": [30 + 10 * i, 20, 32, 32]}]}
             for i in range(3)]
    lines += [{"ID": "empty", "gtboxes": []}, {"ID": "missing", "gtboxes": []}, {"ID": "broken", "gtboxes": []}]
    return str(images), write_odgt(tmp_path / "gt.odgt", lines)


def run(dataset, **kw):
    images, odgt = dataset
    methods = [precision.Original(), PillowCodecMethod("jpeg", 90), AnonymizeThenCompress("maskout", PillowCodecMethod("jpeg", 90)),
               AnonymizeThenCompress("blur", PillowCodecMethod("jpeg", 90))]
    report = DataReport()
    return precision.measure(iter_odgt(odgt, report), [images], methods, BrightSquares("face", "squares"),
                             BrightSquares("person", "squares"), PixelEmbedder(), report=report, **kw)


def test_harness_counts_every_method_on_the_same_images(dataset, tmp_path):
    rows, complete, report = run(dataset)
    assert complete and report.counts["missing images"] == 1 and report.counts["failed images"] == 1
    by = {(r["method"], r["config"]): r for r in rows}
    assert [r["images"] for r in rows] == [4, 4, 4, 4]
    original, jpeg, masked, blurred = by[("original", "")], by[("jpeg", "q90")], by[("maskout+jpeg", "q90")], by[("blur+jpeg", "q90")]
    assert (original["face_tp"], original["face_fp"], original["face_ap"], original["face_gt"]) == (3, 0, 1.0, 3)
    assert original["bpp_mean"] == "" and original["reid_rate"] == 1.0 and original["reid_distance_max"] == 0.0
    assert (jpeg["face_tp"], jpeg["person_tp"], jpeg["reid_faces"], jpeg["reid_matched"]) == (3, 3, 3, 3)
    assert jpeg["bpp_mean"] > 0 and jpeg["psnr_mean"] > 30
    # masked faces (127) are gone for the detector and far from the original
    assert (masked["face_tp"], masked["face_detections"], masked["reid_matched"], masked["anonymized_regions"]) == (0, 0, 0, 3)
    assert masked["reid_distance_min"] > 0.6
    assert blurred["reid_distance_mean"] > jpeg["reid_distance_mean"]
    # the CSV round trip and the Tab. I-style table
    path = str(tmp_path / "p.csv")
    precision.write_csv(path, rows, {"size": "", "timestamp": "t"}, complete)
    back = precision.read_csv(path)
    assert back[0]["method"] == "original" and back[0]["complete"] == "1" and math.isnan(back[0]["bpp_mean"])
    assert back[2]["face_tp"] == 0.0 and len(back[2]["reid_distances"]) == 3
    with pytest.raises(Exception):
        precision.write_csv(path, rows, {}, complete, replace=False)  # an existing file is left alone
    text = "\n".join(table(back, load_paper(PAPER)))
    assert "maskout + JPEG q90" in text and "0/3 0 %" in text and "3/3 100 %" in text


def test_oracle_boxes_and_time_budget(dataset):
    rows, complete, _ = run(dataset, oracle_boxes=True, budget_s=1e-9)
    assert not complete and all(r["images"] == 1 for r in rows)  # stops between images: every method saw the same one
    assert rows[2]["anonymized_regions"] == 1 and rows[2]["face_tp"] == 0


def test_resized_evaluation_scales_ground_truth(dataset):
    rows, _, _ = run(dataset, size=64)
    assert rows[0]["face_tp"] == 3  # the detections at 64 x 64 still match the scaled head boxes


def test_baseline_encode_detects_then_anonymizes_then_compresses():
    calls = []

    class Counting(BrightSquares):
        def detect(self, rgb):
            calls.append(rgb.shape)
            return BrightSquares.detect(self, rgb)

    rgb = np.full((64, 64, 3), 40, np.uint8)
    rgb[10:30, 20:40] = 250
    method = AnonymizeThenCompress("maskout", PillowCodecMethod("jpeg", 95), Counting("face", "squares"))
    assert (method.method, method.config, method.backend) == ("maskout+jpeg", "q95", "pillow+squares")
    payload, encoded = method.encode(method.prepare(rgb))
    decoded = method.decode(encoded)
    assert calls == [(64, 64, 3)] and payload[:2] == b"\xff\xd8"  # detection inside encode, then JPEG
    assert np.abs(decoded[12:28, 22:38].astype(int) - 127).max() <= 3 and decoded[50, 50, 0] < 60


def test_detector_names_are_checked():
    with pytest.raises(UsageError, match="mtcnn, dlib"):
        open_detector("yolo:x.pt", "face")
    with pytest.raises(UsageError, match="hog, yolo:PATH"):
        open_detector("mtcnn", "person")


def test_distance_summary():
    s = distance_summary([0.2, 0.7, 0.5, 0.9], 0.6)
    assert (s["faces"], s["matched"], s["rate"], s["min"], s["max"]) == (4, 2, 0.5, 0.2, 0.9)
    assert s["median"] == pytest.approx(0.6) and s["threshold"] == 0.6
    assert math.isnan(distance_summary([])["rate"])


def test_paper_values_are_the_reference_numbers():
    paper = {(p["method"], p["config"]): p for p in load_paper(PAPER)}
    assert (paper[("roi-codec", "128-2")]["face_tp"], paper[("roi-codec", "128-2")]["face_fp"]) == (150, 1105)
    assert (paper[("jpeg", "q10")]["face_tp"], paper[("jpeg", "q10")]["bpp"], paper[("jpeg", "q10")]["person_ap"]) == (4031, 0.39, 0.20)
    assert paper[("avif", "q1")]["face_ap"] == 0.007 and len(paper) == 9


def test_audit_verdicts_never_pass_without_evidence():
    face = Found([0.0, 0.0, 10.0, 10.0], 0.9)

    def audit(gate, results, failed=0):
        tally = Audit(gate)
        for result in results:
            tally.add(result)
        tally.failed = failed
        return tally.verdict()

    faces_only = AuditGate(max_faces=0)
    assert audit(faces_only, [AuditResult([face], None)] * 8) == ("FAIL", ["8 faces detected > 0"])
    assert audit(faces_only, [AuditResult([], None)] * 8) == ("PASS", [])
    reid = AuditGate(max_reidentified=0.1)
    no_faces = [AuditResult([], [])] * 3  # the originals showed no face
    assert audit(reid, no_faces)[0] == "INCONCLUSIVE" and Audit(reid).rate is None
    assert audit(reid, [AuditResult([], [([0, 0, 9, 9], 0.7)])]) == ("PASS", [])
    leak = [AuditResult([face], [([0, 0, 9, 9], 0.2), ([0, 0, 9, 9], 0.9)])]
    assert audit(reid, leak) == ("FAIL", ["re-identified 50.0% > 10.0%"])
    assert audit(reid, leak, failed=1)[0] == "FAIL"  # a leak found stays found
    assert audit(reid, no_faces, failed=1)[0] == "INCOMPLETE"
    assert [EXIT_STATUS[v] for v in ("PASS", "INCOMPLETE", "FAIL", "INCONCLUSIVE")] == [0, 1, 3, 4]
