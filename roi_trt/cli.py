"""The `roi-trt` command line. Heavy modules (torch, onnx, TensorRT) are imported inside commands only."""

import os
import re
import sys
import time
import warnings

import click

from . import __version__
from .backends import BACKENDS
from .errors import RoiTrtError
from .imageio import IMAGE_SUFFIXES


# compressai's import triggers a torch deprecation warning that says nothing to a CLI user.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


class _Group(click.Group):
    """Turn user-facing errors into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RoiTrtError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # unwritable output directory, full disk, ...
            where = "{}: ".format(exc.filename) if exc.filename else ""
            raise click.ClickException(where + (exc.strerror or str(exc))) from None


def _shape(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", value)
    if not m:
        raise click.BadParameter("expected BATCHxHEIGHTxWIDTH, e.g. 1x512x512")
    return tuple(int(g) for g in m.groups())


def _checkpoint_arg(checkpoint):
    """The given checkpoint, or the demo checkpoint shipped in the package."""
    from .demo import DEMO_CHECKPOINT

    return checkpoint or DEMO_CHECKPOINT


trust_option = click.option(
    "--trust-pickle", is_flag=True, help="Allow checkpoints that contain arbitrary Python objects (runs their code)."
)


model_option = click.option(
    "-m", "--model", type=click.Path(exists=True), help="Export directory or checkpoint [default: the shipped demo checkpoint]."
)
backend_option = click.option(
    "--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
    help="auto: onnxruntime (CUDA if onnxruntime-gpu finds a GPU, else CPU).",
)
threads_option = click.option("--threads", type=click.IntRange(1), help="CPU threads for the transforms.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roi-trt")
def main():
    """Deploy anonymizing learned image compression: export, build, encode, decode, benchmark."""


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@trust_option
def info(checkpoint, trust_pickle):
    """Describe CHECKPOINT (default: the shipped demo checkpoint)."""
    from .checkpoint import load_checkpoint, parameter_counts

    model, ckpt = load_checkpoint(_checkpoint_arg(checkpoint), trust=trust_pickle)
    counts = parameter_counts(model)
    click.echo(f"checkpoint:      {ckpt.path}")
    click.echo(f"format:          {ckpt.format}, {ckpt.serialization} serialization")
    click.echo(f"N, M:            {ckpt.N}, {ckpt.M} ({ckpt.nm_source})")
    click.echo(f"latent channels: {ckpt.N}")
    click.echo(f"downsampling:    {model.downsampling}x (latent of a 512x512 image: {512 // model.downsampling}x{512 // model.downsampling})")
    for part, n in counts.items():
        click.echo(f"parameters ({part}): {n:,}")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Export directory [default: export/<checkpoint name>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [default: 13, the highest TensorRT 8.2 parses].")
@click.option("--fixed-shape", callback=_shape, help="Fix every dimension, BATCHxHEIGHTxWIDTH (e.g. 1x512x512).")
@trust_option
def export(checkpoint, output, opset, fixed_shape, trust_pickle):
    """Export CHECKPOINT to ONNX (GDN1 as a custom op) and verify it against PyTorch."""
    from .checkpoint import load_checkpoint
    from .export import DEFAULT_OPSET, export_model

    path = _checkpoint_arg(checkpoint)
    model, ckpt = load_checkpoint(path, trust=trust_pickle)
    output = output or os.path.join("export", os.path.splitext(os.path.basename(path))[0])
    manifest = export_model(model, ckpt, output, opset=opset or DEFAULT_OPSET, shape=fixed_shape)
    click.echo(f"exported ({ckpt.N}, {ckpt.M}) from {ckpt.format} checkpoint to {output}")
    for row in manifest["verification"]:
        click.echo(
            "  {input:<16} {variant:<13} latent max|diff| {latent_max_abs_diff:.2e}  "
            "symbols identical {symbol_agreement:.4%}  image max|diff| {image_max_abs_diff:.2e}".format(**row)
        )
    click.echo(f"fingerprint {manifest['fingerprint'][:16]}")


@main.command()
@click.argument("images", required=False, type=click.Path(file_okay=False))
@click.option("--annotations", type=click.Path(dir_okay=False), help="CrowdHuman .odgt file; without it only rate + background MSE apply.")
@click.option("--demo-data", is_flag=True, help="Train on the bundled sample photos and their committed boxes.")
@click.option("-o", "--output", default="runs/train", show_default=True, type=click.Path(file_okay=False))
@click.option("-N", "N", default=128, show_default=True, type=click.IntRange(8))
@click.option("-M", "M", default=2, show_default=True, type=click.IntRange(0))
@click.option("--size", default=512, show_default=True, type=click.IntRange(16), help="Images are resized to SIZE x SIZE.")
@click.option("--batch-size", default=14, show_default=True, type=click.IntRange(1))
@click.option("--epochs", type=click.IntRange(1), help="[default: 1 unless a step or time limit is given]")
@click.option("--max-steps", type=click.IntRange(1))
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True))
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--aux-lr", default=1e-3, show_default=True)
@click.option("--lambda-rate", default=0.04, show_default=True)
@click.option("--lambda-bg", default=1.0, show_default=True)
@click.option("--lambda-hbox", default=0.6, show_default=True)
@click.option("--lambda-vbox", default=1.0, show_default=True)
@click.option("--flip", is_flag=True, help="Random horizontal flips (boxes flipped alike).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--workers", default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--checkpoint-every", default=500, show_default=True, help="Steps between checkpoints.")
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue from a checkpoint (optimizer state too if it is ours).")
def train(images, annotations, demo_data, output, N, M, size, batch_size, epochs, max_steps, max_minutes, lr, aux_lr,
          lambda_rate, lambda_bg, lambda_hbox, lambda_vbox, flip, seed, device, workers, checkpoint_every, resume):
    """Train a codec with the ROI loss on IMAGES (CrowdHuman layout or a plain folder)."""
    from .train.losses import LossWeights
    from .train.trainer import default_config, train as run

    if demo_data == bool(images):
        raise click.UsageError("give IMAGES or --demo-data (not both)")
    if demo_data:
        from .train.demo_data import write_dataset

        images, annotations = write_dataset(os.path.join(output, "demo-data"))
    if epochs is None and max_steps is None and max_minutes is None:
        epochs = 1
    config = default_config(
        data=images, annotations=annotations, out=output, N=N, M=M, size=size, batch_size=batch_size, epochs=epochs,
        max_steps=max_steps, max_minutes=max_minutes, lr=lr, aux_lr=aux_lr, seed=seed, device=device, resume=resume,
        checkpoint_every=checkpoint_every, workers=workers, flip=flip,
        weights=LossWeights(lambda_rate, lambda_bg, lambda_hbox, lambda_vbox),
    )
    run(config, echo=click.echo)


@main.command()
@click.option("-o", "--output", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@model_option
@backend_option
def demo(output, model, backend):
    """Encode and decode the bundled sample photos; write original|decoded PNGs and print bpp and timings."""
    from .demo import run_demo

    run_demo(output, model=model, backend=backend, echo=click.echo)


def _csv_list(ctx, param, value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@main.group()
def bench():
    """Latency benchmarks following the paper's protocol, and their reports."""


@bench.command("latency")
@click.argument("images", nargs=-1)
@click.option("--models", default="256-2,256-1,128-2", show_default=True, callback=_csv_list,
              help="Comma list: N-M (random weights, latency only), 'demo', checkpoints or export directories.")
@click.option("--backends", default="torch,onnxruntime", show_default=True, callback=_csv_list,
              help="torch (the paper's PyTorch + CompressAI pipeline), onnxruntime.")
@click.option("--codecs", default="jpeg,avif", show_default=True, callback=_csv_list)
@click.option("--qualities", default="1,5,10", show_default=True, callback=_csv_list)
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(2))
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0))
@click.option("--size", default=512, show_default=True, type=click.IntRange(16))
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch and ONNX Runtime [default: library default].")
@click.option("--device", default="cpu", show_default=True, help="Device of the torch method (cpu, cuda).")
@click.option("--time-budget", type=click.FloatRange(0, min_open=True), help="Seconds; stops between units with valid partial results.")
@click.option("-o", "--output", default="latency.csv", show_default=True, type=click.Path(dir_okay=False))
def bench_latency(images, models, backends, codecs, qualities, repeats, warmup, size, threads, device, time_budget, output):
    """Time encode and decode of our codec, the paper's pipeline, JPEG and AVIF on IMAGES [default: bundled photos]."""
    from tqdm import tqdm

    from .bench.latency import build_methods, environment, load_images, measure, write_csv
    from .samples import sample_photos

    bad = [b for b in backends if b not in BACKENDS]
    if bad or any(c not in ("jpeg", "avif") for c in codecs) or not all(q.isdigit() and 0 <= int(q) <= 100 for q in qualities):
        raise click.BadParameter("backends: {}; codecs: jpeg,avif; qualities: 0..100".format(",".join(BACKENDS)))
    paths = _expand(images, IMAGE_SUFFIXES) if images else sample_photos()
    if not paths:
        raise click.ClickException("no images given and no bundled sample photos installed")
    loaded = load_images(paths, size)
    try:
        methods, notes = build_methods(models, backends, codecs, [int(q) for q in qualities], threads, device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--models") from None
    for note in notes:
        click.echo("note: " + note, err=True)
    if not methods:
        raise click.ClickException("nothing to measure")
    with tqdm(total=len(loaded) * len(methods), unit="run", desc="images x methods") as bar:
        rows, complete = measure(methods, loaded, repeats, warmup, time_budget, progress=bar.update)
    write_csv(output, rows, environment(threads, size), complete)
    if not complete:
        click.echo("time budget spent: partial results ({} of {} image x method units)".format(
            sum(int(r["images"]) for r in rows if r["stage"] == "encode"), len(loaded) * len(methods)), err=True)
    click.echo("wrote {} rows to {}".format(len(rows), output))


@bench.command("report")
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--compare", help="'paper' (benchmarks/paper_latency.csv) or a CSV in the same schema.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a Fig. 5-style PNG here.")
def bench_report(results, compare, plot):
    """Print RESULTS in the layout of the paper's Tab. II/III (optionally against the paper's values)."""
    from .bench.latency import read_csv
    from .bench.report import load_paper, plot as draw, table

    rows = read_csv(results)
    paper = load_paper(None if compare == "paper" else compare) if compare else None
    for line in table(rows, paper):
        click.echo(line)
    if plot:
        draw(rows, plot)
        click.echo("\nwrote {}".format(plot))


STREAM_SUFFIXES = (".roi", ".msgpack", ".bin")


def _expand(patterns, suffixes):
    """Files named by paths, globs and directories (non-recursive), in order, without repeats."""
    import glob

    found = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found += sorted(os.path.join(pattern, n) for n in os.listdir(pattern) if n.lower().endswith(suffixes))
        elif glob.has_magic(pattern):
            found += sorted(glob.glob(pattern))
        else:
            found.append(pattern)  # a missing file is reported as that file's failure
    return list(dict.fromkeys(found))


def _output_path(source, output, many, suffix):
    """OUT is a file only for a single input and when it has an extension; otherwise a directory."""
    stem = os.path.splitext(os.path.basename(source))[0] + suffix
    if output is None:
        return os.path.join(os.path.dirname(source), stem)
    if many or os.path.isdir(output) or not os.path.splitext(output)[1]:
        return os.path.join(output, stem)
    return output


def _size(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", value)
    if not m or int(m.group(1)) == 0 or (m.group(2) and int(m.group(2)) == 0):
        raise click.BadParameter("expected SIZE or WIDTHxHEIGHT, e.g. 512 or 640x480")
    width = int(m.group(1))
    return (int(m.group(2) or width), width)


def _process(files, work, as_json, verb):
    """Run work(path) -> dict over files with a progress bar; failures are reported and skipped."""
    import json

    from tqdm import tqdm

    if not files:
        raise click.ClickException("no input files")
    results, failed = [], 0
    start = time.perf_counter()
    with tqdm(files, unit="file", disable=as_json or len(files) < 2, leave=False) as bar:
        for path in bar:
            try:
                row = work(path)
            except RoiTrtError as exc:
                failed += 1
                message = str(exc) if str(exc).startswith(path) else "{}: {}".format(path, exc)
                bar.write("error: " + message, file=sys.stderr)
                if as_json:
                    click.echo(json.dumps({"file": path, "error": str(exc)}))
                continue
            line = row.pop("_line")
            results.append(row)
            if as_json:
                click.echo(json.dumps(row))
            else:
                bar.write(line)
    elapsed = time.perf_counter() - start
    summary = {"files": len(files), "ok": len(results), "failed": failed, "seconds": round(elapsed, 3)}
    if results and "bpp" in results[0]:
        summary["mean_bpp"] = round(sum(r["bpp"] for r in results) / len(results), 4)
    summary["files_per_s"] = round(len(results) / elapsed, 3) if elapsed > 0 else None
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        extra = ", mean {} bpp".format(summary["mean_bpp"]) if "mean_bpp" in summary else ""
        click.echo("{} {}/{} files{}, {} files/s".format(verb, len(results), len(files), extra, summary["files_per_s"]))
    if failed:
        sys.exit(1)


@main.command()
@click.argument("images", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", type=click.Path(), help="Output .roi file (one input) or directory [default: beside each input].")
@backend_option
@click.option("--size", callback=_size, help="Resize first, e.g. 512 (512x512, as in the paper) or 640x480.")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, then a summary.")
def encode(images, model, output, backend, size, threads, as_json):
    """Compress IMAGES (files, globs, directories) to .roi streams."""
    from .codec import open_codec
    from .fileio import write_bytes_atomic
    from .imageio import load_rgb

    files = _expand(images, IMAGE_SUFFIXES)
    codec = open_codec(model, backend=backend, threads=threads)
    notes = set()

    def work(path):
        rgb, note = load_rgb(path)
        if note and note not in notes:
            notes.add(note)
            click.echo("note: {} ({}; further such images not mentioned)".format(note, path), err=True)
        data, timing = codec.encode(rgb, size=size)
        target = _output_path(path, output, len(files) > 1, ".roi")
        write_bytes_atomic(target, data)
        height, width = (size or rgb.shape[:2])
        bpp = len(data) * 8.0 / (height * width)
        row = {"file": path, "output": target, "width": width, "height": height, "bytes": len(data), "bpp": round(bpp, 5),
               "transform_ms": round(timing.transform * 1e3, 3), "entropy_ms": round(timing.entropy * 1e3, 3)}
        row["_line"] = "{}  {}x{}  {:.4f} bpp  {} B  analysis {:.1f} ms  entropy coding {:.1f} ms".format(
            path, width, height, bpp, len(data), row["transform_ms"], row["entropy_ms"])
        return row

    _process(files, work, as_json, "encoded")


@main.command()
@click.argument("streams", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", type=click.Path(), help="Output image (one input) or directory [default: beside each input].")
@backend_option
@threads_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stream, then a summary.")
def decode(streams, model, output, backend, threads, as_json):
    """Decode .roi streams (or the reference coder's msgpack packets) to PNG images."""
    from PIL import Image

    from .codec import open_codec
    from .fileio import atomic_output

    files = _expand(streams, STREAM_SUFFIXES)
    codec = open_codec(model, backend=backend, threads=threads)

    def work(path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise RoiTrtError("{}: {}".format(path, exc.strerror)) from None
        rgb, timing = codec.decode(data)
        target = _output_path(path, output, len(files) > 1, ".png")
        with atomic_output(target) as tmp:
            Image.fromarray(rgb).save(tmp, format="PNG")
        row = {"file": path, "output": target, "width": rgb.shape[1], "height": rgb.shape[0],
               "bpp": round(len(data) * 8.0 / (rgb.shape[0] * rgb.shape[1]), 5),
               "entropy_ms": round(timing.entropy * 1e3, 3), "transform_ms": round(timing.transform * 1e3, 3)}
        row["_line"] = "{} -> {}  {}x{}  entropy decoding {:.1f} ms  synthesis {:.1f} ms".format(
            path, target, rgb.shape[1], rgb.shape[0], row["entropy_ms"], row["transform_ms"])
        return row

    _process(files, work, as_json, "decoded")


if __name__ == "__main__":
    sys.exit(main())
