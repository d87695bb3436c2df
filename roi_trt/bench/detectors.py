"""Face and person detectors behind one small interface, for the precision and privacy benchmarks.

    detector = open_detector("mtcnn", "face")        # or "dlib"; persons: "hog", "yolo:PATH"
    for found in detector.detect(rgb):               # uint8 HxWx3 RGB
        found.box, found.score                       # [x0, y0, x1, y1] (x1, y1 exclusive), confidence

| name | kind | package (offline weights) | as in |
|---|---|---|---|
| `mtcnn` | face | facenet-pytorch (P/R/O-Net weights ship in the wheel) | the paper (Fig. 4, Tab. I) |
| `dlib` | face | dlib-bin (HOG + linear SVM frontal face detector, built into dlib) | |
| `hog` | person | opencv-python-headless (Dalal-Triggs people detector, built into OpenCV) | offline default |
| `yolo:PATH` | person | ultralytics + the user's weights file (the paper: yolov8x.pt, COCO class 0) | the paper |

Every package is imported when a detector is opened, never at module import (this module is
torch-free and Python 3.6-compatible); a missing package or weights file raises one error naming
what to install or pass.
"""

import os
import warnings
from collections import namedtuple

import numpy as np

from ..errors import RoiTrtError, UsageError
from ..optional import MissingDependency, require

Found = namedtuple("Found", "box score")  # box: [x0, y0, x1, y1] floats, x1/y1 exclusive

FACE_DETECTORS = ("mtcnn", "dlib")
PERSON_DETECTORS = ("hog", "yolo:PATH")


class Detector(object):
    kind = None  # "face" or "person"
    name = None

    def detect(self, rgb):
        """uint8 HxWx3 RGB -> list of Found, in the detector's own order."""
        raise NotImplementedError

    def close(self):
        pass


class MtcnnFaces(Detector):
    """MTCNN from facenet-pytorch, as the paper ran it (`MTCNN(device).detect(image)`: every face the
    cascade keeps, with its O-Net probability)."""

    kind, name = "face", "mtcnn"

    def __init__(self, device=None, threads=None, min_face_size=20):
        purpose = "the MTCNN face detector"
        self.torch = require("torch", purpose)
        try:
            facenet = require("facenet_pytorch", purpose)
        except MissingDependency:
            raise MissingDependency(
                "{} needs facenet-pytorch, which is not installed: pip install --no-deps facenet-pytorch (its "
                "metadata pins an old torch; it runs with the installed one)".format(purpose)) from None
        if threads:
            self.torch.set_num_threads(threads)
        self.model = facenet.MTCNN(keep_all=True, device=device or "cpu", min_face_size=min_face_size)

    def detect(self, rgb):
        if min(rgb.shape[:2]) < 12:  # below P-Net's input: nothing can be found
            return []
        with self.torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boxes, probs = self.model.detect(np.ascontiguousarray(rgb))
        if boxes is None:
            return []
        boxes = np.asarray(boxes, dtype=np.float64)
        return [Found([float(v) for v in box], float(p)) for box, p in zip(boxes, probs)]


def _dlib():
    return require("dlib", "dlib's face detector and embeddings")


class DlibFaces(Detector):
    """dlib's frontal face detector (HOG + linear SVM); the score is its SVM margin (> threshold)."""

    kind, name = "face", "dlib"

    def __init__(self, upsample=1, threshold=0.0):
        self.upsample, self.threshold = int(upsample), float(threshold)
        self.detector = _dlib().get_frontal_face_detector()

    def detect(self, rgb):
        rects, scores, _ = self.detector.run(np.ascontiguousarray(rgb), self.upsample, self.threshold)
        return [Found([float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)], float(s))
                for r, s in zip(rects, scores)]


class HogPersons(Detector):
    """OpenCV's HOG people detector (Dalal & Triggs, trained on upright full-body pedestrians); the score
    is its SVM weight. It misses upper-body portraits and seated people: pass YOLO weights for those."""

    kind, name = "person", "hog"

    def __init__(self, hit_threshold=0.0, win_stride=8, scale=1.05):
        cv2 = self.cv2 = require("cv2", "the HOG person detector")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.hit_threshold, self.win_stride, self.scale = float(hit_threshold), int(win_stride), float(scale)

    def detect(self, rgb):
        if rgb.shape[0] < 128 or rgb.shape[1] < 64:  # smaller than the detection window
            return []
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        rects, weights = self.hog.detectMultiScale(bgr, hitThreshold=self.hit_threshold, winStride=(self.win_stride,) * 2,
                                                   padding=(8, 8), scale=self.scale)
        return [Found([float(x), float(y), float(x + w), float(y + h)], float(np.ravel(s)[0]))
                for (x, y, w, h), s in zip(rects, weights)]


class YoloPersons(Detector):
    """Ultralytics YOLO (the paper: yolov8x.pt) on COCO class 0, at Ultralytics' default confidence 0.25
    as the paper's harness called it. Weights are the user's file: nothing is downloaded."""

    kind, name = "person", "yolo"

    def __init__(self, weights, device=None, conf=0.25):
        if not weights or not os.path.isfile(weights):
            raise RoiTrtError("{}: no such YOLO weights file (pass --person-detector yolo:PATH with a local file, "
                              "e.g. yolov8x.pt; nothing is downloaded)".format(weights or "''"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        ultralytics = require("ultralytics", "the YOLO person detector")
        try:
            self.model = ultralytics.YOLO(weights)
        except Exception as exc:  # Ultralytics raises many kinds for a file that is not its model
            raise RoiTrtError("{}: not a YOLO model Ultralytics can load ({})".format(weights, exc)) from None
        self.device, self.conf = device, float(conf)
        self.name = "yolo:" + os.path.basename(weights)

    def detect(self, rgb):
        kwargs = {"classes": [0], "conf": self.conf, "verbose": False}
        if self.device:
            kwargs["device"] = self.device
        result = self.model.predict(np.ascontiguousarray(rgb[..., ::-1]), **kwargs)[0]  # numpy input is BGR
        boxes = result.boxes.xyxy.cpu().numpy().astype(np.float64)
        scores = result.boxes.conf.cpu().numpy().astype(np.float64)
        return [Found([float(v) for v in box], float(s)) for box, s in zip(boxes, scores)]


def open_detector(spec, kind, device=None, threads=None):
    """'mtcnn' | 'dlib' (faces), 'hog' | 'yolo:PATH' (persons) -> Detector of that kind."""
    spec = (spec or "").strip()
    name, _, arg = spec.partition(":")
    known = FACE_DETECTORS if kind == "face" else PERSON_DETECTORS
    if kind == "face" and name == "mtcnn" and not arg:
        return MtcnnFaces(device=device, threads=threads)
    if kind == "face" and name == "dlib" and not arg:
        return DlibFaces()
    if kind == "person" and name == "hog" and not arg:
        return HogPersons()
    if kind == "person" and name == "yolo":
        return YoloPersons(arg, device=device)
    raise UsageError("{} detector '{}': choose {}".format(kind, spec, ", ".join(known)))
