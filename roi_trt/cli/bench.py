"""`roi-trt bench`: the paper's latency protocol and its reports."""

import click

from ..backends import BACKENDS
from ..imageio import IMAGE_SUFFIXES
from .options import csv_list, force_option, progress_option, refuse_existing, show_progress


@click.group()
def bench():
    """Latency benchmarks following the paper's protocol, and their reports."""


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
@force_option
@progress_option
def bench_latency(images, models, backends, codecs, qualities, repeats, warmup, size, threads, device, time_budget, output,
                  force, progress):
    """Time encode and decode of our codec, the paper's pipeline, JPEG and AVIF on IMAGES [default: bundled photos]."""
    from tqdm import tqdm

    from ..bench.latency import build_methods, environment, load_images, measure, write_csv
    from ..files import expand
    from ..samples import sample_photos

    bad = [b for b in backends if b not in BACKENDS]
    if bad or any(c not in ("jpeg", "avif") for c in codecs) or not all(q.isdigit() and 0 <= int(q) <= 100 for q in qualities):
        raise click.BadParameter("backends: {}; codecs: jpeg,avif; qualities: 0..100".format(",".join(BACKENDS)))
    refuse_existing(output, force)
    loaded = load_images(expand(images, IMAGE_SUFFIXES) if images else sample_photos(), size)
    methods, notes = build_methods(models, backends, codecs, [int(q) for q in qualities], threads, device)
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


@bench.command("report")
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--compare", help="'paper' (benchmarks/paper_latency.csv) or a CSV in the same schema.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a Fig. 5-style PNG here.")
@force_option
def bench_report(results, compare, plot, force):
    """Print RESULTS in the layout of the paper's Tab. II/III (optionally against the paper's values)."""
    from ..bench.latency import read_csv
    from ..bench.report import load_paper, plot as draw, table

    refuse_existing(plot, force)
    rows = read_csv(results)
    paper = load_paper(None if compare == "paper" else compare) if compare else None
    for line in table(rows, paper):
        click.echo(line)
    if plot:
        draw(rows, plot, replace=force)
        click.echo("\nwrote {}".format(plot))


COMMANDS = (bench,)
