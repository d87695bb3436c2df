"""`roi-trt audit`: what an operator runs on decoded images after deploying a model: faces still
detected, and (with the originals) how many faces are still re-identified; gates a deployment."""

import json
import os

import click

from ..bench.privacy import DEFAULT_MAX_REIDENTIFIED, THRESHOLD as REID_THRESHOLD
from ..imageio import IMAGE_SUFFIXES
from .options import force_option, progress_option, show_progress


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
              help="Directory of the original images (matched by name: a.decoded.png <- a.jpg): measures re-identification "
                   "and gates on it.")
@click.option("--face-detector", default="mtcnn", show_default=True, help="mtcnn (facenet-pytorch) or dlib.")
@click.option("--min-confidence", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Ignore detections below this confidence (MTCNN: probability; dlib: SVM margin).")
@click.option("--threshold", default=REID_THRESHOLD, show_default=True, type=click.FloatRange(0, min_open=True),
              help="dlib embedding distance below which a decoded face still matches its original.")
@click.option("--max-reidentified", type=click.FloatRange(0, 1),
              help="With --originals: FAIL when a larger share of the original faces is re-identified "
                   "[default: {:g}].".format(DEFAULT_MAX_REIDENTIFIED))
@click.option("--max-faces", type=click.IntRange(0),
              help="FAIL when more faces than this are still detected in all decoded images together.")
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False),
              help="Write <name>.audit.png here: faces still detected (orange) and original faces, red if re-identified.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, then a summary with the gate and verdict.")
@force_option
@progress_option
def audit(decoded, originals, face_detector, min_confidence, threshold, max_reidentified, max_faces, annotate_dir, as_json,
          force, progress):
    """Audit DECODED images for faces that survived the codec (files, globs or directories) and judge them
    against a gate.

    Prints the faces still detected per image (with confidence) and in total; with --originals, the
    re-identification rate: the share of faces found on the originals whose dlib embedding on the decoded
    image is closer than --threshold. The summary states the gate, the counts and the verdict.

    A gate must be given: --originals (re-identification, at most --max-reidentified) and/or --max-faces.
    Without originals there is no default: detectors also fire on anonymized faces and on background (a
    mask-out baseline still had detections), and a codec may leave a face detectable yet unrecognizable, so
    any fixed count would fail good deployments or pass leaking ones; audit refuses to judge rather than
    print a PASS nothing was checked for.

    \b
    Exit status:
      0  PASS: every criterion met, every image audited
      3  FAIL: a criterion exceeded (whatever else happened)
      4  INCONCLUSIVE: no face found on the originals, so re-identification was not measured
      1  INCOMPLETE: a file could not be audited (the others still are; never PASS)
      2  bad options, or no gate given"""
    from tqdm import tqdm

    from ..bench.detectors import FACE_DETECTORS, open_detector
    from ..bench.privacy import EXIT_STATUS, PASS, Audit, AuditGate, FaceEmbedder, annotate, audit_image
    from ..errors import RoiTrtError, UsageError
    from ..fileio import atomic_output, check_output
    from ..files import expand
    from ..imageio import load_rgb, resize

    if face_detector not in FACE_DETECTORS:
        raise click.BadParameter("face detector: {}".format(", ".join(FACE_DETECTORS)))
    if max_reidentified is not None and not originals:
        raise UsageError("--max-reidentified needs --originals")
    if not originals and max_faces is None:
        raise UsageError("no gate to judge by: give --originals DIR (re-identification, at most --max-reidentified, "
                         "default {:.0%}) and/or --max-faces N".format(DEFAULT_MAX_REIDENTIFIED))
    gate = AuditGate(max_faces, (DEFAULT_MAX_REIDENTIFIED if max_reidentified is None else max_reidentified)
                     if originals else None, threshold)
    paths = expand(list(decoded), IMAGE_SUFFIXES)
    if "-" in paths:
        raise click.BadParameter("audit reads files, not standard input")
    if not paths:
        raise UsageError("no images to audit in {}".format(" ".join(decoded)))
    targets = {}
    if annotate_dir:  # every annotation checked before the work: none replaced without --force, none shared
        check_output(annotate_dir, directory=True)
        inputs = set(os.path.realpath(p) for p in paths)
        for path in paths:
            target = os.path.join(annotate_dir, _stem(path) + ".audit.png")
            if os.path.realpath(target) in inputs:
                raise UsageError("{}: would overwrite an input".format(target))
            if target in targets.values():
                raise UsageError("{} and {} would both be annotated as {}".format(
                    next(p for p, t in targets.items() if t == target), path, target))
            check_output(target, replace=force)
            targets[path] = target
    detector = open_detector(face_detector, "face")
    embedder = FaceEmbedder() if originals else None
    tally = Audit(gate)
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
                    with atomic_output(targets[path], replace=force) as tmp:
                        annotate(rgb, result, threshold).save(tmp, format="PNG")
            except RoiTrtError as exc:
                tally.failed += 1
                click.echo("Error: {}".format(exc), err=True)
                continue
            matched = tally.add(result)
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
    verdict, reasons = tally.verdict()
    if as_json:
        summary = {"images": tally.images, "failed": tally.failed, "faces_detected": tally.detected,
                   "images_with_faces": tally.with_faces, "face_detector": detector.name,
                   "min_confidence": min_confidence, "gate": gate._asdict(), "verdict": verdict, "reasons": reasons,
                   "exit_status": EXIT_STATUS[verdict], "passed": verdict == PASS}
        if originals:
            summary.update({"original_faces": tally.original_faces, "reidentified": tally.reidentified,
                            "reidentification_rate": tally.rate})
        click.echo(json.dumps({"summary": summary}))
    else:
        text = "{} images ({} failed): {} faces still detected by {} in {} images".format(
            tally.images, tally.failed, tally.detected, detector.name, tally.with_faces)
        if originals:
            text += "; re-identified {} of {} original faces ({}, dlib distance < {:g})".format(
                tally.reidentified, tally.original_faces, "no rate" if tally.rate is None else "{:.1%}".format(tally.rate),
                threshold)
        click.echo(text)
        click.echo("gate: " + gate.describe())
        click.echo(verdict + (": " + "; ".join(reasons) if reasons else ""))
    if EXIT_STATUS[verdict]:
        click.get_current_context().exit(EXIT_STATUS[verdict])


COMMANDS = (audit,)
