"""Precision and privacy with the real detectors (MTCNN, dlib, HOG) on the bundled photos, re-identification
with dlib's embeddings, the CLI end to end (bench precision, precision-report, audit, latency baselines).
The torch-free bookkeeping (AP, ground truth, blur, the harness with stand-in detectors) is in
tests/edge/test_precision_edge.py."""

import csv
import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roi_trt.bench.anonymize import blur_regions, gaussian_kernel, mask_regions
from roi_trt.bench.detectors import open_detector
from roi_trt.bench.voc_ap import iou
from roi_trt.cli import main
from roi_trt.imageio import load_rgb, resize
from roi_trt.optional import MissingDependency
from roi_trt.samples import PHOTOS_DIR

# Hand-made ground truth of the two bundled portraits (benchmarks/data/precision_gt.odgt), as [x0, y0, x1, y1].
FACES = {"astronaut": [170, 45, 285, 182], "grace_hopper": [162, 128, 360, 340]}
PERSONS = {"astronaut": [22, 14, 370, 512], "grace_hopper": [12, 22, 512, 600]}


def photo(name):
    return load_rgb(os.path.join(PHOTOS_DIR, name + ".jpg"))[0]


def need(*modules):
    import importlib.util

    for module in modules:
        reason = "{} is not installed ({})".format(
            module, "optional: pip install ultralytics" if module == "ultralytics" else "the precision extra; see the README")
        if module == "face_recognition_models":  # importing it needs pkg_resources; its files are what we use
            if importlib.util.find_spec(module) is None:
                pytest.skip(reason)
        else:
            pytest.importorskip(module, reason=reason)


@pytest.fixture(scope="module")
def mtcnn():
    need("facenet_pytorch")
    return open_detector("mtcnn", "face")


@pytest.fixture(scope="module")
def embedder():
    need("dlib", "face_recognition_models")
    from roi_trt.bench.privacy import FaceEmbedder

    return FaceEmbedder()


def test_mtcnn_finds_the_portraits_faces_and_nothing_on_coffee(mtcnn):
    for name, face in FACES.items():
        found = mtcnn.detect(photo(name))
        assert len(found) == 1 and found[0].score > 0.99
        assert iou(found[0].box, face) > 0.5, (name, found)
    assert mtcnn.detect(photo("coffee")) == []
    assert mtcnn.detect(np.zeros((8, 8, 3), np.uint8)) == []  # below P-Net's input size


def test_dlib_finds_the_same_faces():
    need("dlib")
    dlib = open_detector("dlib", "face")
    for name, face in FACES.items():
        found = [f for f in dlib.detect(photo(name)) if iou(f.box, face) > 0.5]
        assert len(found) == 1 and found[0].score > 0.5, name
    assert dlib.detect(photo("chelsea")) == []


def test_hog_runs_but_misses_upper_body_portraits():
    need("cv2")
    hog = open_detector("hog", "person")
    for name, person in PERSONS.items():
        rgb = photo(name)
        found = hog.detect(rgb)
        for f in found:
            assert 0 <= f.box[0] < f.box[2] <= rgb.shape[1] + 16 and 0 <= f.box[1] < f.box[3] <= rgb.shape[0] + 16
        # Dalal-Triggs finds upright full bodies: these seated/upper-body people are not found (why YOLO exists)
        assert not [f for f in found if iou(f.box, person) >= 0.5], name
    assert hog.detect(np.zeros((100, 50, 3), np.uint8)) == []  # smaller than its 64 x 128 window


def test_reidentification_matches_itself_not_a_heavily_blurred_face(mtcnn, embedder):
    from roi_trt.bench.privacy import THRESHOLD, distance_summary

    rgb = photo("grace_hopper")
    faces = [f.box for f in mtcnn.detect(rgb)]
    refs = embedder.references(rgb, faces)
    assert len(refs) == 1 and refs[0].embedding.shape == (128,)
    assert embedder.distances(rgb, refs) == [0.0]
    light = embedder.distances(blur_regions(rgb, faces, sigma=2), refs)[0]
    heavy = embedder.distances(blur_regions(rgb, faces, sigma=25), refs)[0]
    masked = embedder.distances(mask_regions(rgb, faces), refs)[0]
    assert light < THRESHOLD < heavy and masked > THRESHOLD
    s = distance_summary([0.0, light, heavy, masked])
    assert (s["faces"], s["matched"], s["threshold"]) == (4, 2, 0.6) and s["max"] == pytest.approx(max(heavy, masked))


def test_blur_equals_a_separable_gaussian_filter():
    from scipy.ndimage import correlate1d

    rgb = photo("astronaut")
    box = [100, 120, 260, 300]
    k = gaussian_kernel(7)
    want = rgb.astype(np.float64)
    for axis in (0, 1):
        want = correlate1d(want, k, axis=axis, mode="nearest")
    out = blur_regions(rgb, [box])
    np.testing.assert_array_equal(out[120:300, 100:260], np.clip(np.rint(want[120:300, 100:260]), 0, 255).astype(np.uint8))


def test_missing_packages_and_weights_name_what_to_do(monkeypatch, tmp_path):
    from roi_trt.errors import RoiTrtError

    for module, words in (("facenet_pytorch", "pip install --no-deps facenet-pytorch"), ("cv2", "opencv-python-headless"),
                          ("dlib", "dlib-bin")):
        monkeypatch.setitem(sys.modules, module, None)
        kind, name = {"facenet_pytorch": ("face", "mtcnn"), "cv2": ("person", "hog"), "dlib": ("face", "dlib")}[module]
        with pytest.raises(MissingDependency, match=words.replace(".", r"\.")):
            open_detector(name, kind)
    with pytest.raises(RoiTrtError, match="no such YOLO weights file.*nothing is downloaded"):
        open_detector("yolo:" + str(tmp_path / "yolov8x.pt"), "person")
    weights = tmp_path / "yolov8x.pt"
    weights.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(MissingDependency, match="pip install ultralytics"):
        open_detector("yolo:" + str(weights), "person")
    import importlib.util

    from roi_trt.bench import privacy

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(MissingDependency, match="pip install face-recognition-models"):
        privacy.dlib_model_dir()


@pytest.fixture()
def fixture_set(tmp_path):
    """Two bundled portraits at 256 x 256 plus a photo without people, and their ground truth."""
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for name in ("astronaut", "grace_hopper", "coffee"):
        rgb = photo(name)
        Image.fromarray(resize(rgb, (256, 256))).save(str(images / (name + ".png")))
        boxes = []
        if name in FACES:
            (fx0, fy0, fx1, fy1), (px0, py0, px1, py1) = FACES[name], PERSONS[name]
            sx, sy = 256.0 / rgb.shape[1], 256.0 / rgb.shape[0]
            boxes.append({"tag": "person", "hbox": [fx0 * sx, fy0 * sy, (fx1 - fx0) * sx, (fy1 - fy0) * sy],
                          "vbox": [px0 * sx, py0 * sy, (px1 - px0) * sx, (py1 - py0) * sy]})
        lines.append(json.dumps({"ID": name, "gtboxes": boxes}))
    lines.append(json.dumps({"ID": "not_there", "gtboxes": []}))
    odgt = tmp_path / "gt.odgt"
    odgt.write_text("\n".join(lines) + "\n")
    return str(images), str(odgt)


def test_cli_precision_report_and_audit_end_to_end(fixture_set, tmp_path):
    need("facenet_pytorch", "dlib", "face_recognition_models", "cv2")
    images, odgt = fixture_set
    out = str(tmp_path / "precision.csv")
    args = ["bench", "precision", images, "--annotations", odgt, "--models", "demo", "--codecs", "jpeg", "--qualities", "10",
            "--baselines", "maskout", "--oracle-boxes", "-o", out]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "skipped missing images: 1 (e.g. not_there)" in result.output
    with open(out) as f:
        rows = {(r["method"], r["config"]): r for r in csv.DictReader(f)}
    assert set(rows) == {("original", ""), ("roi-codec", "128-2"), ("jpeg", "q10"), ("maskout+jpeg", "q10")}
    original, masked = rows[("original", "")], rows[("maskout+jpeg", "q10")]
    assert original["face_tp"] == "2" and float(original["face_ap"]) == 1.0 and original["reid_matched"] == "2"
    assert masked["face_tp"] == "0" and masked["reid_matched"] == "0" and float(masked["reid_distance_min"]) > 0.6
    assert masked["anonymized_regions"] == "2" and float(masked["bpp_mean"]) > 0
    assert rows[("roi-codec", "128-2")]["model"] == "demo" and original["person_detector"] == "hog"
    assert original["facenet_pytorch"] and original["dlib"] and original["complete"] == "1"
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists (--force replaces it)" in again.output

    plot = str(tmp_path / "fig4.png")
    report = CliRunner().invoke(main, ["bench", "precision-report", out, "--compare", "paper", "--plot", plot])
    assert report.exit_code == 0, report.output
    assert "vs paper (CrowdHuman val)" in report.output and "maskout + JPEG q10" in report.output
    assert Image.open(plot).size[0] > 800
    bad = CliRunner().invoke(main, ["bench", "precision-report", odgt])
    assert bad.exit_code == 1 and "not a precision results file" in bad.output

    # audit: an unchanged copy re-identifies (gate fails), a masked copy does not (gate passes)
    decoded = tmp_path / "decoded"
    decoded.mkdir()
    for name in ("astronaut", "grace_hopper"):
        rgb = load_rgb(os.path.join(images, name + ".png"))[0]
        Image.fromarray(rgb).save(str(decoded / (name + ".decoded.png")))
    masked_dir = tmp_path / "masked"
    masked_dir.mkdir()
    mtcnn = open_detector("mtcnn", "face")
    for name in ("astronaut", "grace_hopper"):
        rgb = load_rgb(os.path.join(images, name + ".png"))[0]
        boxes = [[f.box[0] - 10, f.box[1] - 10, f.box[2] + 10, f.box[3] + 10] for f in mtcnn.detect(rgb)]
        Image.fromarray(mask_regions(rgb, boxes)).save(str(masked_dir / (name + ".decoded.png")))
    fail = CliRunner().invoke(main, ["audit", str(decoded), "--originals", images, "--annotate", str(tmp_path / "ann")])
    assert fail.exit_code == 3, fail.output
    assert "re-identified 1/1  (distance 0.000)" in fail.output and "re-identified 2 of 2 original faces (100.0%" in fail.output
    assert "FAIL: re-identified 100.0% > 10.0%" in fail.output
    assert Image.open(str(tmp_path / "ann" / "astronaut.audit.png")).size == (256, 256)
    again = CliRunner().invoke(main, ["audit", str(decoded), "--originals", images, "--annotate", str(tmp_path / "ann")])
    assert again.exit_code == 2 and again.output.count("\n") == 1 and "astronaut.audit.png exists" in again.output
    ok = CliRunner().invoke(main, ["audit", str(masked_dir), "--originals", images, "--json"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.output.strip().splitlines()[-1])["summary"]
    assert summary["faces_detected"] == 0 and summary["reidentified"] == 0 and summary["original_faces"] == 2 and summary["passed"]
    gated = CliRunner().invoke(main, ["audit", str(decoded), "--max-faces", "1"])
    assert gated.exit_code == 3 and "2 faces detected > 1" in gated.output
    lost = CliRunner().invoke(main, ["audit", str(decoded / "astronaut.decoded.png"), str(tmp_path / "nope.png"),
                                     "--originals", images, "--max-reidentified", "1"])
    assert lost.exit_code == 1 and "nope.png: no such file" in lost.output and "1 images (1 failed)" in lost.output
    assert "INCOMPLETE: 1 file(s) not audited" in lost.output
    orphan = CliRunner().invoke(main, ["audit", str(decoded / "astronaut.decoded.png"), "--originals", str(masked_dir)])
    assert orphan.exit_code == 1 and "no original in" in orphan.output and "(expected astronaut.*)" in orphan.output


def test_audit_fails_closed(tmp_path):
    """Review finding: eight decoded images that each still show a face passed an audit with no gate
    ("8 faces still detected ... PASS", exit 0), and originals without faces gave a re-identification
    rate of 0 and PASS. Now: no gate -> refused; a gate -> FAIL; nothing measured -> INCONCLUSIVE."""
    need("dlib", "face_recognition_models")
    decoded, originals, faceless = tmp_path / "decoded", tmp_path / "originals", tmp_path / "faceless"
    for d in (decoded, originals, faceless):
        d.mkdir()
    for i in range(8):
        rgb = resize(photo("astronaut" if i % 2 else "grace_hopper"), (200 + 8 * i, 200 + 8 * i))
        Image.fromarray(rgb).save(str(decoded / "p{}.decoded.png".format(i)))
    for name in ("coffee", "chelsea"):
        Image.fromarray(photo(name)).save(str(originals / (name + ".png")))
        Image.fromarray(photo(name)).save(str(faceless / (name + ".decoded.png")))

    def audit(*args):
        result = CliRunner().invoke(main, ["audit", "--face-detector", "dlib"] + [str(a) for a in args])
        assert "Traceback" not in result.output
        return result

    ungated = audit(decoded)
    assert ungated.exit_code == 2 and "PASS" not in ungated.output
    assert "no gate to judge by: give --originals DIR" in ungated.output and "--max-faces N" in ungated.output
    failed = audit(decoded, "--max-faces", "0")
    assert failed.exit_code == 3, failed.output
    assert "8 images (0 failed): 8 faces still detected by dlib in 8 images" in failed.output
    assert "gate: faces detected <= 0" in failed.output and "FAIL: 8 faces detected > 0" in failed.output
    assert audit(decoded, "--max-faces", "8").exit_code == 0
    nothing = audit(faceless, "--originals", originals)
    assert nothing.exit_code == 4, nothing.output
    assert "re-identified 0 of 0 original faces (no rate" in nothing.output
    assert "INCONCLUSIVE: no face found on the originals" in nothing.output and "PASS" not in nothing.output
    summary = json.loads(audit(faceless, "--originals", originals, "--json").output.strip().splitlines()[-1])["summary"]
    assert (summary["verdict"], summary["exit_status"], summary["passed"]) == ("INCONCLUSIVE", 4, False)
    assert summary["reidentification_rate"] is None and summary["original_faces"] == 0
    assert summary["gate"] == {"max_faces": None, "max_reidentified": 0.1, "threshold": 0.6}
    assert audit(decoded, "--max-reidentified", "0.5").exit_code == 2  # a re-identification gate needs originals


def test_cli_precision_refuses_bad_detectors(fixture_set, tmp_path):
    images, odgt = fixture_set
    result = CliRunner().invoke(main, ["bench", "precision", images, "--annotations", odgt, "--person-detector", "yolo:none.pt",
                                       "--face-detector", "dlib", "-o", str(tmp_path / "p.csv")])
    if "dlib" in result.output and "not installed" in result.output:
        pytest.skip("dlib is not installed")
    assert result.exit_code == 1 and "none.pt: no such YOLO weights file" in result.output
    bad = CliRunner().invoke(main, ["bench", "precision", images, "--annotations", odgt, "--face-detector", "opencv"])
    assert bad.exit_code == 2 and "mtcnn, dlib" in bad.output
    assert not os.path.exists(str(tmp_path / "p.csv"))


def test_latency_times_the_baselines_edge_cost(tmp_path):
    need("facenet_pytorch")
    out = str(tmp_path / "lat.csv")
    result = CliRunner().invoke(main, ["bench", "latency", os.path.join(PHOTOS_DIR, "astronaut.jpg"), "--models", "demo",
                                       "--backends", "onnxruntime", "--codecs", "jpeg", "--qualities", "10", "--baselines",
                                       "blur,maskout", "--repeats", "2", "--size", "128", "-o", out])
    assert result.exit_code == 0, result.output
    with open(out) as f:
        rows = list(csv.DictReader(f))
    methods = {(r["method"], r["backend"]) for r in rows}
    assert {("blur+jpeg", "pillow+mtcnn"), ("maskout+jpeg", "pillow+mtcnn"), ("jpeg", "pillow")} <= methods
    assert {r["n"] for r in rows if r["method"] == "blur+jpeg"} == {"2"}


def test_yolo_loads_user_weights_and_detects(tmp_path, monkeypatch):
    need("ultralytics")
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    weights = str(tmp_path / "random.pt")
    YOLO("yolov8n.yaml").save(weights)  # the architecture with random weights: nothing is downloaded
    yolo = open_detector("yolo:" + weights, "person")
    assert yolo.name == "yolo:random.pt" and yolo.kind == "person"
    found = yolo.detect(photo("astronaut"))
    assert isinstance(found, list) and all(len(f.box) == 4 and 0.25 <= f.score <= 1 for f in found)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    from roi_trt.errors import RoiTrtError

    with pytest.raises(RoiTrtError, match="not a YOLO model"):
        open_detector("yolo:" + str(bad), "person")
