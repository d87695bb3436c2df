"""`roi-trt audit`: what an operator runs on decoded images after deploying a model: faces still
detected, and (with the originals) how many faces are still re-identified; gates a deployment."""

import json
import os

import click

from ..bench.privacy import THRESHOLD as REID_THRESHOLD
from ..imageio import IMAGE_SUFFIXES
from .options import force_option, progress_option, show_progress

GATE_FAILED = 3  # exit status when a threshold is exceeded (1: a file failed, 2: bad options)


def _stem(path):
    """`photo.decoded.png` -> `photo` (decode's default name), else the name without its suffix."""
    name = os.path.basename(path)
    for suffix in (".decoded.png", ".decoded.jpg", ".decoded.jpeg", ".decoded.webp", ".decoded.tif", ".decoded.tiff"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def find_original(decoded_path, originals):
    """The original of a decoded image in directory `originals`: the same name without `.decoded.*`
    (`a.jpg.decoded.png` -> `a.jpg`), or the same stem with an image suffix; None if absent."""
    from ..datasets.crowdhuman import find_image

    stem = _stem(decoded_path)
    exact = os.path.join(originals, stem)
    if os.path.splitext(stem)[1].lower() in IMAGE_SUFFIXES and os.path.isfile(exact):
        return exact
    return find_image([originals], stem)


@click.command("audit")
@click.argument("decoded", nargs=-1, required=True)
@click.option("--originals", type=click.Path(exists=True, file_okay=False),
              help="Directory of the original images (matched by name: a.decoded.png <- a.jpg): measures re-identification.")
@click.option("--face-detector", default="mtcnn", show_default=True, help="mtcnn (facenet-pytorch) or dlib.")
@click.option("--min-confidence", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Ignore detections below this confidence (MTCNN: probability; dlib: SVM margin).")
@click.option("--threshold", default=REID_THRESHOLD, show_default=True, type=click.FloatRange(0, min_open=True),
              help="dlib embedding distance below which a decoded face still matches its original.")
@click.option("--max-reidentified", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="With --originals: fail (exit 3) when a larger share of the original faces is re-identified.")
@click.option("--max-faces", type=click.IntRange(0),
              help="Fail (exit 3) when more faces than this are still detected in all decoded images together.")
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False),
              help="Write <name>.audit.png here: faces still detected (orange) and original faces, red if re-identified.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, then a summary.")
@force_option
@progress_option
def audit(decoded, originals, face_detector, min_confidence, threshold, max_reidentified, max_faces, annotate_dir, as_json,
          force, progress):
    """Audit DECODED images for faces that survived the codec (files, globs or directories).

    Prints the faces still detected per image (with confidence) and in total; with --originals, the
    re-identification rate: the share of faces found on the originals whose dlib embedding on the decoded
    image is closer than --threshold. Exit status 3 when --max-reidentified or --max-faces is exceeded
    (a deployment gate), 1 when a file could not be audited (the others still are)."""
    from tqdm import tqdm

    from ..bench.detectors import FACE_DETECTORS, open_detector
    from ..bench.privacy import FaceEmbedder, annotate, audit_image
    from ..errors import RoiTrtError
    from ..fileio import atomic_output
    from ..files import expand
    from ..imageio import load_rgb, resize

    if face_detector not in FACE_DETECTORS:
        raise click.BadParameter("face detector: {}".format(", ".join(FACE_DETECTORS)))
    paths = expand(list(decoded), IMAGE_SUFFIXES)
    if "-" in paths:
        raise click.BadParameter("audit reads files, not standard input")
    detector = open_detector(face_detector, "face")
    embedder = FaceEmbedder() if originals else None
    failed = images = detected = with_faces = original_faces = reidentified = 0
    with tqdm(total=len(paths), unit="image", disable=not show_progress(progress)) as bar:
        for path in paths:
            bar.update(1)
            name = os.path.basename(path)
            try:
                rgb, _ = load_rgb(path)
                original = None
                if originals:
                    source = find_original(path, originals)
                    if source is None:
                        raise RoiTrtError("{}: no original in {} (expected {}.*)".format(name, originals, _stem(path)))
                    original, _ = load_rgb(source)
                    if original.shape != rgb.shape:  # decoded after --size: compare at the decoded size
                        original = resize(original, rgb.shape[:2])
                result = audit_image(rgb, detector, embedder, original, min_confidence)
                if annotate_dir:
                    target = os.path.join(annotate_dir, _stem(path) + ".audit.png")
                    if os.path.realpath(target) == os.path.realpath(path):
                        raise RoiTrtError("{}: would overwrite an input".format(target))
                    with atomic_output(target, replace=force) as tmp:
                        annotate(rgb, result, threshold).save(tmp, format="PNG")
            except RoiTrtError as exc:
                failed += 1
                click.echo("Error: {}".format(exc), err=True)
                continue
            images += 1
            detected += len(result.faces)
            with_faces += bool(result.faces)
            matched = None
            if result.distances is not None:
                original_faces += len(result.distances)
                matched = sum(1 for _, d in result.distances if d < threshold)
                reidentified += matched
            if as_json:
                click.echo(json.dumps({
                    "image": path, "faces": [{"box": [round(v, 1) for v in f.box], "confidence": round(f.score, 4)} for f in result.faces],
                    "original_faces": None if result.distances is None else len(result.distances),
                    "reidentified": matched,
                    "distances": None if result.distances is None else [round(d, 4) for _, d in result.distances],
                    "threshold": threshold if result.distances is not None else None,
                }))
            else:
                line = "{:<32} faces {:>2}{}".format(name, len(result.faces), "  (confidence {})".format(
                    " ".join("{:.2f}".format(f.score) for f in result.faces)) if result.faces else "")
                if result.distances is not None:
                    line += "  re-identified {}/{}{}".format(matched, len(result.distances), "  (distance {})".format(
                        " ".join("{:.3f}".format(d) for _, d in result.distances)) if result.distances else "")
                click.echo(line)
    rate = reidentified / float(original_faces) if original_faces else 0.0
    gates = []
    if originals and rate > max_reidentified:
        gates.append("re-identified {:.1%} > {:.1%}".format(rate, max_reidentified))
    if max_faces is not None and detected > max_faces:
        gates.append("{} faces detected > {}".format(detected, max_faces))
    summary = {"images": images, "failed": failed, "faces_detected": detected, "images_with_faces": with_faces,
               "face_detector": detector.name, "min_confidence": min_confidence}
    if originals:
        summary.update({"original_faces": original_faces, "reidentified": reidentified, "reidentification_rate": rate,
                        "threshold": threshold, "max_reidentified": max_reidentified})
    summary["passed"] = not gates
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        text = "{} images ({} failed): {} faces still detected by {} in {} images".format(
            images, failed, detected, detector.name, with_faces)
        if originals:
            text += "; re-identified {} of {} original faces ({:.1%}, dlib distance < {:g})".format(
                reidentified, original_faces, rate, threshold)
        click.echo(text)
        click.echo("FAIL: " + "; ".join(gates) if gates else (
            "INCOMPLETE: {} file(s) not audited".format(failed) if failed else "PASS"))
    if gates or failed:
        click.get_current_context().exit(GATE_FAILED if gates else 1)


COMMANDS = (audit,)
