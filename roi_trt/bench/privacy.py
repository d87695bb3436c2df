"""Re-identification measured directly (Azizian & Bajić: measure privacy on the decoded images, not PSNR).

For every face found in the original, dlib's 128-d face embedding (the ResNet of
`face_recognition_models`, 99.38 % on LFW) of the original face and of the same region of the decoded
image are compared: Euclidean distance below dlib's standard threshold (THRESHOLD) means "the same person",
i.e. the decoded face still re-identifies. Both embeddings are taken on the face chip aligned with the
original's 5-point landmarks, so the distance measures what the codec changed in that region, not
whether a landmark detector still finds the face: the attacker knows where the face was, which makes
the rate an upper bound (a codec that blurs a face until detectors miss it but leaves it
identifiable shows up here).

Also the operator's audit (`roi-trt audit`): faces still detected on decoded images, re-identification
against the originals, annotated images. Torch-free, Python 3.6; dlib is imported when used.
"""

import importlib.util
import os
from collections import namedtuple

import numpy as np

from ..optional import MissingDependency, require

THRESHOLD = 0.6  # dlib's: distances below it are the same person
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
EMBEDDING = "dlib_face_recognition_resnet_model_v1.dat"

Reference = namedtuple("Reference", "box landmarks embedding")


def dlib_model_dir():
    """The model files of `face_recognition_models`, found without importing it (its __init__ needs
    pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("dlib's face embeddings need face-recognition-models, which is not installed: "
                                "pip install face-recognition-models")
    directory = os.path.join(list(spec.submodule_search_locations)[0], "models")
    for name in (LANDMARKS, EMBEDDING):
        if not os.path.isfile(os.path.join(directory, name)):
            raise MissingDependency("{}: missing from face-recognition-models (reinstall it)".format(name))
    return directory


class FaceEmbedder(object):
    """dlib's 128-d face descriptor, aligned by its 5-point landmark model."""

    name = "dlib-resnet-128"

    def __init__(self):
        self.dlib = require("dlib", "dlib's face embeddings")
        directory = dlib_model_dir()
        self.shape = self.dlib.shape_predictor(os.path.join(directory, LANDMARKS))
        self.net = self.dlib.face_recognition_model_v1(os.path.join(directory, EMBEDDING))

    def _rect(self, box, height, width):
        x0, y0 = int(round(max(0.0, box[0]))), int(round(max(0.0, box[1])))
        x1, y1 = int(round(min(float(width), box[2]))), int(round(min(float(height), box[3])))
        return self.dlib.rectangle(x0, y0, max(x0, x1 - 1), max(y0, y1 - 1))

    def landmarks(self, rgb, box):
        return self.shape(rgb, self._rect(box, rgb.shape[0], rgb.shape[1]))

    def embed(self, rgb, landmarks):
        return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(rgb), landmarks), dtype=np.float64)

    def references(self, original, boxes):
        """The original's faces -> [Reference] (landmarks and embedding of each), computed once per image."""
        original = np.ascontiguousarray(original)
        refs = []
        for box in boxes:
            shape = self.landmarks(original, box)
            refs.append(Reference(list(box), shape, self.embed(original, shape)))
        return refs

    def distances(self, decoded, references):
        """Embedding distance of each reference face to the same (aligned) region of `decoded`."""
        decoded = np.ascontiguousarray(decoded)
        return [float(np.linalg.norm(self.embed(decoded, r.landmarks) - r.embedding)) for r in references]


def distance_summary(distances, threshold=THRESHOLD):
    """-> dict: faces, matched (distance < threshold), rate, and the distribution (mean, min, p10, median,
    p90, max); rate and distribution are nan without faces."""
    d = np.asarray(distances, dtype=np.float64)
    nan = float("nan")
    out = {"faces": int(d.size), "matched": int((d < threshold).sum()), "threshold": threshold}
    out["rate"] = out["matched"] / float(d.size) if d.size else nan
    for key, fn in (("mean", np.mean), ("min", np.min), ("p10", lambda a: np.percentile(a, 10)),
                    ("median", np.median), ("p90", lambda a: np.percentile(a, 90)), ("max", np.max)):
        out[key] = float(fn(d)) if d.size else nan
    return out


# -- the operator's audit

AuditResult = namedtuple("AuditResult", "faces distances")  # faces: [Found] on the decoded image; distances per original face


def audit_image(decoded, detector, embedder=None, original=None, min_confidence=0.0):
    """Faces still detected on `decoded` (at or above min_confidence) and, with the original and an
    embedder, the re-identification distance of every face the detector finds on the original."""
    faces = [f for f in detector.detect(decoded) if f.score >= min_confidence]
    distances = None
    if original is not None and embedder is not None:
        boxes = [f.box for f in detector.detect(original) if f.score >= min_confidence]
        refs = embedder.references(original, boxes)
        distances = list(zip([r.box for r in refs], embedder.distances(decoded, refs)))
    return AuditResult(faces, distances)


# The verdicts of `roi-trt audit` and their exit statuses (1 and 2 as for every command: a file failed, bad options).
PASS, INCOMPLETE, FAIL, INCONCLUSIVE = "PASS", "INCOMPLETE", "FAIL", "INCONCLUSIVE"
EXIT_STATUS = {PASS: 0, INCOMPLETE: 1, FAIL: 3, INCONCLUSIVE: 4}
DEFAULT_MAX_REIDENTIFIED = 0.1  # the re-identification gate when originals are given and no other share


class AuditGate(namedtuple("AuditGate", "max_faces max_reidentified threshold")):
    """What a deployment must meet, None for a criterion not applied: at most `max_faces` faces detected on
    all decoded images together; at most the share `max_reidentified` of the faces found on the originals
    re-identified (embedding distance < `threshold`)."""

    def __new__(cls, max_faces=None, max_reidentified=None, threshold=THRESHOLD):
        return super(AuditGate, cls).__new__(cls, max_faces, max_reidentified, threshold)

    def describe(self):
        parts = []
        if self.max_faces is not None:
            parts.append("faces detected <= {}".format(self.max_faces))
        if self.max_reidentified is not None:
            parts.append("re-identified <= {:.1%} of the original faces (distance < {:g})".format(
                self.max_reidentified, self.threshold))
        return "; ".join(parts)


class Audit(object):
    """The counts of an audit under `gate`, and its verdict: FAIL when a criterion is exceeded (a leak found
    stays found), else INCOMPLETE when a file could not be audited, else INCONCLUSIVE when re-identification
    is gated but no face was found on the originals (nothing was measured), else PASS."""

    def __init__(self, gate):
        self.gate = gate
        self.images = self.failed = self.detected = self.with_faces = self.original_faces = self.reidentified = 0

    def add(self, result):
        """Count one image's AuditResult -> its re-identified faces (None without originals)."""
        self.images += 1
        self.detected += len(result.faces)
        self.with_faces += bool(result.faces)
        if result.distances is None:
            return None
        matched = sum(1 for _, d in result.distances if d < self.gate.threshold)
        self.original_faces += len(result.distances)
        self.reidentified += matched
        return matched

    @property
    def rate(self):
        """Share of the original faces re-identified; None when none was found (not 0: nothing was measured)."""
        return self.reidentified / float(self.original_faces) if self.original_faces else None

    def verdict(self):
        """-> (verdict, reasons)."""
        gate, exceeded, open_questions = self.gate, [], []
        if gate.max_faces is not None and self.detected > gate.max_faces:
            exceeded.append("{} faces detected > {}".format(self.detected, gate.max_faces))
        if gate.max_reidentified is not None:
            if self.rate is None:
                open_questions.append("{}: re-identification not measured".format(
                    "no face found on the originals" if self.images else "no image audited"))
            elif self.rate > gate.max_reidentified:
                exceeded.append("re-identified {:.1%} > {:.1%}".format(self.rate, gate.max_reidentified))
        if exceeded:
            return FAIL, exceeded
        if self.failed:
            return INCOMPLETE, ["{} file(s) not audited".format(self.failed)] + open_questions
        if open_questions:
            return INCONCLUSIVE, open_questions
        return PASS, []


def annotate(decoded, result, threshold=THRESHOLD):
    """PIL image: `decoded` with faces still detected (orange, with confidence) and the original's faces
    (red: re-identified, distance < threshold; green: not), each with its distance."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(decoded)
    draw = ImageDraw.Draw(image)
    for box, distance in result.distances or []:
        color = (255, 0, 0) if distance < threshold else (0, 200, 0)
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=color, width=3)
        draw.text((box[0] + 3, box[3] + 2), "d={:.2f}".format(distance), fill=color)
    for found in result.faces:
        box = found.box
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(255, 160, 0), width=2)
        draw.text((box[0] + 3, max(0, box[1] - 12)), "face {:.2f}".format(found.score), fill=(255, 160, 0))
    return image
