"""`roi-trt bench`: the paper's latency protocol and its reports."""

import click

from ..backends import BACKENDS
from ..bench.privacy import THRESHOLD as REID_THRESHOLD
from ..fileio import check_output
from ..imageio import IMAGE_SUFFIXES
from .options import csv_list, force_option, progress_option, show_progress


@click.group()
def bench():
    """Latency, precision and privacy benchmarks following the paper's protocol, and their reports."""


@bench.command("latency")
@click.argument("images", nargs=-1)
@click.option("--models", default="demo,256-2,256-1", show_default=True, callback=csv_list,
              help="Comma list of MODELs: 'demo' (the trained (128, 2) demo), N-M (random weights, latency only; "
                   "needs torch), checkpoints or export directories.")
@click.option("--backends", default="torch,onnxruntime", show_default=True, callback=csv_list,
              help="torch (the paper's PyTorch + CompressAI pipeline), onnxruntime.")
@click.option("--codecs", default="jpeg,avif", show_default=True, callback=csv_list,
              help="Classic codecs to time beside ours (through Pillow).")
@click.option("--qualities", default="1,5,10", show_default=True, callback=csv_list, help="Qualities of the classic codecs.")
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(2), help="Timed runs per image and method.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0), help="Untimed runs first.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(16), help="Images are resized to SIZE x SIZE.")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch and ONNX Runtime [default: library default].")
@click.option("--device", type=click.Choice(("cpu", "cuda")),
              help="Device of every method [default: the paper's torch pipeline on cpu, onnxruntime on CUDA when it has it].")
@click.option("--time-budget", type=click.FloatRange(0, min_open=True), help="Seconds; stops between units with valid partial results.")
@click.option("-o", "--output", default="latency.csv", show_default=True, type=click.Path(dir_okay=False), help="Results CSV.")
@click.option("--baselines", default="", callback=csv_list,
              help="Also time anonymize-then-compress baselines (blur, maskout) per codec and quality: face detection "
                   "+ anonymization + compression, their edge-side cost.")
@click.option("--face-detector", default="mtcnn", show_default=True, help="Face detector of the baselines: mtcnn, dlib.")
@force_option
@progress_option
def bench_latency(images, models, backends, codecs, qualities, repeats, warmup, size, threads, device, time_budget, output,
                  baselines, face_detector, force, progress):
    """Time encode and decode of our codec, the paper's pipeline, JPEG and AVIF on IMAGES [default: bundled photos]."""
    from tqdm import tqdm

    from ..bench.latency import build_methods, environment, load_images, measure, write_csv
    from ..files import expand
    from ..samples import sample_photos

    bad = [b for b in backends if b not in BACKENDS]
    if bad or any(c not in ("jpeg", "avif") for c in codecs) or not all(q.isdigit() and 0 <= int(q) <= 100 for q in qualities):
        raise click.BadParameter("backends: {}; codecs: jpeg,avif; qualities: 0..100".format(",".join(BACKENDS)))
    _check_baselines(baselines, face_detector)
    check_output(output, replace=force)
    loaded = load_images(expand(images, IMAGE_SUFFIXES) if images else sample_photos(), size)
    methods, notes = build_methods(models, backends, codecs, [int(q) for q in qualities], threads, device,
                                   baselines=baselines, face_detector=face_detector)
    for note in notes:
        click.echo("note: " + note, err=True)
    if not methods:
        raise click.ClickException("nothing to measure")
    with tqdm(total=len(loaded) * len(methods), unit="run", desc="images x methods", disable=not show_progress(progress)) as bar:
        rows, complete = measure(methods, loaded, repeats, warmup, time_budget, progress=bar.update)
    write_csv(output, rows, environment(threads, size), complete, replace=force)
    if not complete:
        click.echo("time budget spent: partial results ({} of {} image x method units)".format(
            sum(int(r["images"]) for r in rows if r["stage"] == "encode"), len(loaded) * len(methods)), err=True)
    click.echo("wrote {} rows to {}".format(len(rows), output))


def _report(read_csv, load_paper, table, draw, results, compare, plot, force):
    """Print RESULTS as a table (beside the paper's or another run's values); draw(rows, path, paper) a plot."""
    if plot:
        check_output(plot, replace=force)
    rows = read_csv(results)
    paper = load_paper(None if compare == "paper" else compare) if compare else None
    for line in table(rows, paper):
        click.echo(line)
    if plot:
        draw(rows, plot, paper)
        click.echo("\nwrote {}".format(plot))


def report_options(paper, figure):
    """RESULTS, --compare (`paper`: the CSV of the paper's values), --plot (`figure`) and --force of a report."""
    def decorate(command):
        for option in reversed([
                click.argument("results", type=click.Path(exists=True, dir_okay=False)),
                click.option("--compare", help="'paper' ({}) or a CSV in the same schema.".format(paper)),
                click.option("--plot", type=click.Path(dir_okay=False), help="Write {} here.".format(figure)),
                force_option]):
            command = option(command)
        return command
    return decorate


@bench.command("report")
@report_options("benchmarks/paper_latency.csv", "a Fig. 5-style PNG")
def bench_report(results, compare, plot, force):
    """Print RESULTS in the layout of the paper's Tab. II/III (optionally against the paper's values)."""
    from ..bench import latency, report

    _report(latency.read_csv, report.load_paper, report.table, lambda rows, path, paper: report.plot(rows, path, force),
            results, compare, plot, force)


def _check_baselines(baselines, face_detector):
    from ..bench.anonymize import BASELINES
    from ..bench.detectors import FACE_DETECTORS

    if any(b not in BASELINES for b in baselines):
        raise click.BadParameter("baselines: {}".format(",".join(BASELINES)))
    if face_detector not in FACE_DETECTORS:
        raise click.BadParameter("face detector: {}".format(", ".join(FACE_DETECTORS)))


@bench.command("precision")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--annotations", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Ground truth in CrowdHuman's odgt format (e.g. annotation_val.odgt): hbox = heads, vbox = persons.")
@click.option("--models", default="demo", show_default=True, callback=csv_list,
              help="Comma list of MODELs (demo, export directories, checkpoints); empty for none.")
@click.option("--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True, help="Backend of our codec.")
@click.option("--codecs", default="jpeg,avif", show_default=True, callback=csv_list, help="Classic codecs (through Pillow).")
@click.option("--qualities", default="1,5,10", show_default=True, callback=csv_list, help="Qualities of the classic codecs.")
@click.option("--baselines", default="", callback=csv_list,
              help="Anonymize-then-compress baselines, each with every codec and quality: blur (Gaussian, sigma 7), "
                   "maskout (127).")
@click.option("--oracle-boxes", is_flag=True, help="Baselines anonymize the ground-truth head boxes instead of detected faces.")
@click.option("--person-detector", default="hog", show_default=True,
              help="hog (OpenCV, offline) or yolo:PATH (Ultralytics with your weights; the paper: yolov8x.pt).")
@click.option("--face-detector", default="mtcnn", show_default=True, help="mtcnn (facenet-pytorch; the paper's) or dlib.")
@click.option("--reid/--no-reid", default=True, show_default=True,
              help="Measure re-identification of the original's faces with dlib's 128-d embeddings.")
@click.option("--reid-threshold", default=REID_THRESHOLD, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Embedding distance below which a decoded face still matches its original (dlib's standard).")
@click.option("--iou", "iou_threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="IoU for a detection to match a ground-truth box.")
@click.option("--size", type=click.IntRange(16), help="Resize images to SIZE x SIZE first (the paper: 512) [default: as they are].")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch and ONNX Runtime.")
@click.option("--device", type=click.Choice(("cpu", "cuda")), help="Device of our codec and the torch detectors.")
@click.option("--time-budget", type=click.FloatRange(0, min_open=True), help="Seconds; stops between images with valid partial results.")
@click.option("-o", "--output", default="precision.csv", show_default=True, type=click.Path(dir_okay=False), help="Results CSV.")
@force_option
@progress_option
def bench_precision(images, annotations, models, backend, codecs, qualities, baselines, oracle_boxes, person_detector,
                    face_detector, reid, reid_threshold, iou_threshold, size, threads, device, time_budget, output, force,
                    progress):
    """Person and face detection precision (Pascal VOC AP, TP/FP) and re-identification after each codec.

    IMAGES: directories holding the annotated images (`<ID>.jpg` as CrowdHuman ships them, or another image
    suffix). Methods: the original, our codec per MODEL, the classic codecs, the baselines."""
    from tqdm import tqdm

    from ..bench.detectors import open_detector
    from ..bench.latency import environment
    from ..bench.precision import build_methods, measure, write_csv
    from ..bench.precision_report import table
    from ..bench.precision import read_csv
    from ..datasets.crowdhuman import DataReport, iter_odgt

    if any(c not in ("jpeg", "avif") for c in codecs) or not all(q.isdigit() and 0 <= int(q) <= 100 for q in qualities):
        raise click.BadParameter("codecs: jpeg,avif; qualities: 0..100")
    _check_baselines(baselines, face_detector)
    if baselines and not codecs:
        raise click.BadParameter("baselines compress with --codecs: give at least one")
    check_output(output, replace=force)
    faces = open_detector(face_detector, "face", device=device, threads=threads)
    persons = open_detector(person_detector, "person", device=device, threads=threads)
    embedder = None
    if reid:
        from ..bench.privacy import FaceEmbedder

        embedder = FaceEmbedder()
    methods, notes = build_methods(models, codecs, [int(q) for q in qualities], baselines, backend, threads, device)
    for note in notes:
        click.echo("note: " + note, err=True)
    report = DataReport()
    with open(annotations, encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    with tqdm(total=total, unit="image", desc="images", disable=not show_progress(progress)) as bar:
        rows, complete, report = measure(iter_odgt(annotations, report), list(images), methods, faces, persons, embedder,
                                         size, oracle_boxes, iou_threshold, reid_threshold, time_budget, bar.update, report)
    for line in report.lines():
        click.echo("skipped " + line, err=True)
    if not rows or not rows[0]["images"]:
        raise click.ClickException("no image could be evaluated")
    write_csv(output, rows, environment(threads, size), complete, replace=force)
    if not complete:
        click.echo("time budget spent: partial results ({} of {} annotated images)".format(int(rows[0]["images"]), total), err=True)
    for line in table(read_csv(output)):
        click.echo(line)
    click.echo("\nwrote {} rows to {}".format(len(rows), output))


@bench.command("precision-report")
@report_options("benchmarks/paper_precision.csv: Tab. I, Fig. 4", "Fig. 4-style plots (PNG)")
def bench_precision_report(results, compare, plot, force):
    """Print a precision CSV as a Tab. I-style table (optionally beside the paper's values) and plot it."""
    from ..bench import precision, precision_report as report

    _report(precision.read_csv, report.load_paper, report.table,
            lambda rows, path, paper: report.plot(rows, path, paper, force), results, compare, plot, force)


COMMANDS = (bench,)
