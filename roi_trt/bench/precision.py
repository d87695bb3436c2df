"""`roi-trt bench precision`: the paper's precision protocol (Tab. I, Fig. 4: persons against visible boxes,
faces against head boxes, Pascal VOC AP at IoU 0.5 with TP/FP, on decoded images) plus
re-identification, on any annotated data set in CrowdHuman's format.

Per annotated image (streamed: one image in memory at a time): optionally resize to size x size
(antialiased; the paper used 512 x 512, ground truth scaled and clipped in floats); detect faces on the
original (they drive the re-identification references and the anonymization baselines' regions); then
every method compresses and decompresses it, persons and faces are detected on the result, and the
re-identification distance of every original face is measured. The row `original` is the uncompressed
image through the same detectors: the ceiling each method is compared with.

Detections are pooled over the data set per method and scored against the ground truth (persons vs
vbox, faces vs hbox) with Pascal VOC AP at IoU 0.5, total TP and FP (`voc_ap`). A unit is one image
through every method, so a `--time-budget` stops between images and every method has seen the same
images. An image that is missing, unreadable, or that a method fails on is skipped for all methods and
counted.
"""

import time
from collections import OrderedDict

import numpy as np

from ..datasets.crowdhuman import DataReport, find_image, resize_boxes
from ..errors import RoiTrtError
from ..imageio import load_rgb, resize
from .anonymize import BASELINES, AnonymizeThenCompress
from .methods import Method
from .privacy import THRESHOLD, distance_summary
from .results import read_rows, write_rows
from .voc_ap import Detection, evaluate

# The CSV schema (documented in benchmarks/README.md); columns are only ever appended. Provenance columns
# as in the latency CSV, plus the detectors' packages (LIBRARIES).
FIELDS = (
    "method", "config", "backend", "model", "images", "bpp_mean", "bpp_std", "bpp_total", "psnr_mean",
    "iou_threshold", "person_detector", "person_gt", "person_detections", "person_tp", "person_fp", "person_ap",
    "face_detector", "face_gt", "face_detections", "face_tp", "face_fp", "face_ap", "anonymized_regions",
    "reid_model", "reid_threshold", "reid_faces", "reid_matched", "reid_rate", "reid_distance_mean",
    "reid_distance_min", "reid_distance_p10", "reid_distance_median", "reid_distance_p90", "reid_distance_max",
    "reid_distances", "size", "threads", "cpu", "cores", "gpu", "python", "numpy", "torch", "onnxruntime",
    "tensorrt", "pillow", "compressai", "facenet_pytorch", "dlib", "opencv", "ultralytics", "roi_trt", "complete", "timestamp", "commit",
)
LIBRARIES = (("facenet_pytorch", "facenet_pytorch", ("facenet-pytorch",)), ("dlib", "dlib", ("dlib", "dlib-bin")),
             ("opencv", "cv2", ("opencv-python-headless", "opencv-python", "opencv-contrib-python")),
             ("ultralytics", "ultralytics", ("ultralytics",)))
NUMERIC = ("images", "bpp_mean", "bpp_std", "bpp_total", "psnr_mean", "iou_threshold", "person_gt", "person_detections",
           "person_tp", "person_fp", "person_ap", "face_gt", "face_detections", "face_tp", "face_fp", "face_ap",
           "reid_threshold", "reid_faces", "reid_matched", "reid_rate", "reid_distance_mean", "reid_distance_min",
           "reid_distance_p10", "reid_distance_median", "reid_distance_p90", "reid_distance_max")


class Original(Method):
    """The uncompressed image: what the detectors find without any codec."""

    method, config, backend, device = "original", "", "", ""


def build_methods(models, codecs, qualities, baselines, backend="auto", threads=None, device=None):
    """-> (methods, notes): the original, our codec per MODEL, classic codecs per quality, and each
    baseline (anonymize, then a classic codec) per codec and quality. A method that cannot run here is
    skipped with a note."""
    from ..codec import open_codec
    from .methods import PillowCodecMethod, RoiCodecMethod

    methods, notes = [Original()], []
    for entry in models:
        try:
            method = RoiCodecMethod(open_codec(entry, backend=backend, threads=threads, device=device))
            method.model = entry
            methods.append(method)
        except RoiTrtError as exc:
            notes.append("{}: skipped ({})".format(entry, exc))
    for codec in codecs:
        for quality in qualities:
            try:
                plain = PillowCodecMethod(codec, quality)
            except RuntimeError as exc:
                notes.append("{}: skipped ({})".format(codec, exc))
                break
            methods.append(plain)
    for mode in baselines:
        if mode not in BASELINES:
            raise RoiTrtError("baseline '{}': choose {}".format(mode, ", ".join(BASELINES)))
        for plain in [m for m in methods if isinstance(m, PillowCodecMethod)]:
            methods.append(AnonymizeThenCompress(mode, PillowCodecMethod(plain.method, plain.quality)))
    return methods, notes


class _Tally(object):
    """Everything one method accumulates over the data set (detections and distances: small)."""

    def __init__(self):
        self.bits, self.pixels, self.bpp, self.psnr = 0, 0, [], []
        self.faces, self.persons, self.distances = [], [], []
        self.images = self.regions = 0


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _roundtrip(method, rgb):
    """-> (payload bytes or None, decoded uint8 HxWx3)."""
    if isinstance(method, Original):
        return None, rgb
    payload, encoded = method.encode(method.prepare(rgb))
    decoded = np.asarray(method.decode(encoded))
    if decoded.ndim == 2:  # a classic codec may hand back grayscale for a gray input
        decoded = np.repeat(decoded[..., None], 3, axis=2)
    return payload, decoded[..., :3]


def measure(records, image_dirs, methods, face_detector, person_detector, embedder=None, size=None, oracle_boxes=False,
            iou_threshold=0.5, threshold=THRESHOLD, budget_s=None, progress=None, report=None):
    """Run every method on every annotated image -> (rows without environment columns, complete, report).

    records: iterable of (ID, head boxes, person boxes) as `iter_odgt` yields; image_dirs: where `<ID>.jpg`
    (or another image suffix) is found. embedder: a privacy.FaceEmbedder, or None to skip re-identification.
    """
    report = report or DataReport()
    deadline = time.monotonic() + budget_s if budget_s else None
    tallies = OrderedDict((m, _Tally()) for m in methods)
    gt_faces, gt_persons = {}, {}
    complete, done = True, 0
    for image_id, heads, persons in records:
        if deadline is not None and done > 0 and time.monotonic() > deadline:
            complete = False
            break
        path = find_image(image_dirs, image_id)
        if path is None:
            report.add("missing images", image_id)
            continue
        try:
            rgb, _ = load_rgb(path)
            h0, w0 = rgb.shape[:2]
            if size:
                rgb = resize(rgb, (size, size))
            target = (rgb.shape[1], rgb.shape[0])
            heads = resize_boxes(heads, (w0, h0), target, report, image_id)
            persons = resize_boxes(persons, (w0, h0), target, report, image_id)
            faces0 = face_detector.detect(rgb)
            refs = embedder.references(rgb, [f.box for f in faces0]) if embedder is not None else []
            regions = heads if oracle_boxes else [f.box for f in faces0]
            results = []
            for m in methods:
                if isinstance(m, AnonymizeThenCompress):
                    m.regions = regions
                payload, decoded = _roundtrip(m, rgb)
                faces = faces0 if payload is None else face_detector.detect(decoded)
                found = person_detector.detect(decoded)
                distances = embedder.distances(decoded, refs) if embedder is not None else []
                results.append((m, payload, decoded, faces, found, distances))
        except RoiTrtError as exc:
            report.add("failed images", "{} ({})".format(image_id, exc))
            continue
        gt_faces[image_id], gt_persons[image_id] = heads, persons
        for m, payload, decoded, faces, found, distances in results:
            t = tallies[m]
            t.images += 1
            t.faces += [Detection(image_id, f.score, f.box) for f in faces]
            t.persons += [Detection(image_id, f.score, f.box) for f in found]
            t.distances += distances
            if isinstance(m, AnonymizeThenCompress):
                t.regions += len(regions)
            if payload is not None:
                pixels = rgb.shape[0] * rgb.shape[1]
                t.bits += len(payload) * 8
                t.pixels += pixels
                t.bpp.append(len(payload) * 8.0 / pixels)
                t.psnr.append(_psnr(rgb, decoded))
        done += 1
        if progress:
            progress(1)
    rows = [_row(m, t, gt_faces, gt_persons, face_detector, person_detector, embedder, iou_threshold, threshold)
            for m, t in tallies.items()]
    return rows, complete, report


def _row(m, t, gt_faces, gt_persons, face_detector, person_detector, embedder, iou_threshold, threshold):
    faces = evaluate(t.faces, gt_faces, iou_threshold)
    persons = evaluate(t.persons, gt_persons, iou_threshold)
    bpp = np.asarray(t.bpp)
    psnr = [p for p in t.psnr if np.isfinite(p)]
    row = {
        "method": m.method, "config": m.config, "backend": m.backend or "", "model": getattr(m, "model", ""),
        "images": t.images,
        "bpp_mean": float(bpp.mean()) if bpp.size else "", "bpp_std": float(bpp.std(ddof=1)) if bpp.size > 1 else "",
        "bpp_total": t.bits / float(t.pixels) if t.pixels else "", "psnr_mean": float(np.mean(psnr)) if psnr else "",
        "iou_threshold": iou_threshold,
        "person_detector": person_detector.name, "person_gt": persons.positives, "person_detections": len(t.persons),
        "person_tp": persons.tp, "person_fp": persons.fp, "person_ap": persons.ap,
        "face_detector": face_detector.name, "face_gt": faces.positives, "face_detections": len(t.faces),
        "face_tp": faces.tp, "face_fp": faces.fp, "face_ap": faces.ap,
        "anonymized_regions": t.regions if isinstance(m, AnonymizeThenCompress) else "",
    }
    if embedder is not None:
        s = distance_summary(t.distances, threshold)
        row.update({
            "reid_model": embedder.name, "reid_threshold": threshold, "reid_faces": s["faces"], "reid_matched": s["matched"],
            "reid_rate": s["rate"], "reid_distance_mean": s["mean"], "reid_distance_min": s["min"], "reid_distance_p10": s["p10"],
            "reid_distance_median": s["median"], "reid_distance_p90": s["p90"], "reid_distance_max": s["max"],
            "reid_distances": " ".join("{:.4f}".format(d) for d in t.distances),
        })
    return row


def _cell(value):
    if isinstance(value, float):
        return "" if value != value else repr(value)  # nan (undefined: no ground truth, no faces) -> empty
    return value


def write_csv(path, rows, env, complete, replace=False):
    write_rows(path, FIELDS, rows, dict(env, complete=int(complete)), replace, cell=_cell, libraries=LIBRARIES)


def read_csv(path):
    """Rows of a precision CSV with numeric columns as floats (nan where empty) and `reid_distances` as a list."""
    rows = read_rows(path, "precision", ("method", "config", "bpp_mean", "person_ap", "face_ap", "face_tp", "face_fp"),
                     NUMERIC)
    for row in rows:
        row["reid_distances"] = [float(v) for v in (row.get("reid_distances") or "").split()]
    return rows
