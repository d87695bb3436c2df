"""The `roi-trt` command line: thin commands over the library. Heavy modules (torch, onnx, TensorRT) are
imported inside commands only, and a missing optional one is reported in one line with its install command."""

import os
import re
import sys
import warnings

import click

from . import __version__
from .backends import BACKENDS
from .errors import RoiTrtError, UsageError
from .imageio import IMAGE_SUFFIXES
from .optional import PACKAGES, missing


# compressai's import triggers a torch deprecation warning that says nothing to a CLI user.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


class _UsageError(click.ClickException):
    exit_code = 2


class _Group(click.Group):
    """Turn user-facing errors into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise _UsageError(str(exc)) from None
        except RoiTrtError as exc:
            raise click.ClickException(str(exc)) from None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in PACKAGES:
                raise
            raise click.ClickException(str(missing(exc.name, "roi-trt " + " ".join(ctx.protected_args)))) from None
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


trust_option = click.option(
    "--trust-pickle", is_flag=True, help="Allow checkpoints that contain arbitrary Python objects (runs their code)."
)
model_option = click.option(
    "-m", "--model", metavar="MODEL",
    help="'demo' (the shipped model), an export directory, a checkpoint, or N-M (random weights) [default: demo].",
)
backend_option = click.option(
    "--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
    help="auto: onnxruntime (CUDA if onnxruntime-gpu finds a GPU, else CPU).",
)
threads_option = click.option("--threads", type=click.IntRange(1), help="CPU threads for the transforms.")
force_option = click.option("--force", is_flag=True, help="Replace existing output files (never an input).")
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per file, then a summary.")
progress_option = click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: only when stderr is a terminal]."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roi-trt")
def main():
    """Deploy anonymizing learned image compression: export, build, encode, decode, benchmark."""


@main.command()
@click.argument("model", required=False)
@trust_option
def info(model, trust_pickle):
    """Describe MODEL: the shipped demo [default], an export directory or a checkpoint."""
    from .store import resolve

    resolved = resolve(model, trust_pickle=trust_pickle)
    checkpoint = resolved.kind == "checkpoint" or bool(resolved.checkpoint and _importable("torch"))
    if checkpoint:
        resolved.torch_model()  # fails before anything is printed
    click.echo("model:           {} ({})".format(resolved.label, resolved.kind))
    if checkpoint:
        _checkpoint_info(resolved)
    if resolved.kind != "checkpoint" or resolved.has_export():
        _export_info(resolved)


def _importable(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # blocked in sys.modules
        return False


def _checkpoint_info(resolved):
    from .checkpoint import parameter_counts

    model, ckpt = resolved.torch_model(), resolved.checkpoint_info()
    d = model.downsampling
    click.echo("checkpoint:      {}".format(ckpt.path))
    click.echo("format:          {}, {} serialization".format(ckpt.format, ckpt.serialization))
    click.echo("N, M:            {}, {} ({})".format(ckpt.N, ckpt.M, ckpt.nm_source))
    click.echo("latent channels: {}".format(ckpt.N))
    click.echo("downsampling:    {}x (latent of a 512x512 image: {}x{})".format(d, 512 // d, 512 // d))
    for part, n in parameter_counts(model).items():
        click.echo("parameters ({}): {:,}".format(part, n))


def _export_info(resolved):
    manifest = resolved.manifest()
    shape = manifest["shape"]
    click.echo("export:          {}".format(resolved.export_dir()))
    click.echo("N, M:            {}, {} (downsampling {}x)".format(manifest["N"], manifest["M"], manifest["downsampling"]))
    click.echo("input shape:     {}".format("any (multiples of {})".format(manifest["downsampling"]) if shape is None
                                            else "fixed {batch}x3x{height}x{width}".format(**shape)))
    click.echo("opset:           {}".format(manifest["opset"]))
    click.echo("fingerprint:     {}".format(manifest["fingerprint"]))
    for runtime, rules in sorted(manifest["runtimes"].items()):
        click.echo("{:<17}{}".format(runtime + ":", ", ".join("{} from {}".format(v, m) for m, v in rules)))
    rows = manifest["verification"]
    click.echo("verified:        latent error {:.2e} (PyTorch fp32 {:.2e}), image error {:.2e} (PyTorch fp32 {:.2e}), "
               "symbols equal >= {:.4%}".format(
                   max(r["latent_max_abs_diff"] for r in rows), max(r["torch_fp32_latent_max_abs_diff"] for r in rows),
                   max(r["image_max_abs_diff"] for r in rows), max(r["torch_fp32_image_max_abs_diff"] for r in rows),
                   min(r["symbol_agreement"] for r in rows)))
    click.echo("made with:       " + ", ".join("{} {}".format(k, v) for k, v in sorted(manifest["tools"].items())))


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Export directory [default: export/<checkpoint name>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [default: 13, the highest TensorRT 8.2 parses].")
@click.option("--fixed-shape", callback=_shape, help="Fix every dimension, BATCHxHEIGHTxWIDTH (e.g. 1x512x512).")
@trust_option
def export(checkpoint, output, opset, fixed_shape, trust_pickle):
    """Export CHECKPOINT [default: the shipped demo's] to ONNX (GDN1 as a custom op), verified against PyTorch."""
    from .checkpoint import load_checkpoint
    from .export import DEFAULT_OPSET, export_model
    from .store import DEMO_CHECKPOINT

    path = checkpoint or DEMO_CHECKPOINT
    model, ckpt = load_checkpoint(path, trust=trust_pickle)
    output = output or os.path.join("export", os.path.splitext(os.path.basename(path))[0])
    manifest = export_model(model, ckpt, output, opset=opset or DEFAULT_OPSET, shape=fixed_shape)
    click.echo("exported ({}, {}) from {} checkpoint to {}".format(ckpt.N, ckpt.M, ckpt.format, output))
    click.echo("  verified against PyTorch float64 ({})".format(manifest["verification_rule"]))
    for row in manifest["verification"]:
        click.echo(
            "  {input:<16} {variant:<13} latent error {latent_max_abs_diff:.2e} (PyTorch fp32 "
            "{torch_fp32_latent_max_abs_diff:.2e})  symbols equal {symbol_agreement:.4%}  image error "
            "{image_max_abs_diff:.2e} (PyTorch fp32 {torch_fp32_image_max_abs_diff:.2e})".format(**row)
        )
    click.echo("fingerprint {}".format(manifest["fingerprint"][:16]))


@main.command()
@click.argument("images", required=False, type=click.Path(file_okay=False))
@click.option("--annotations", type=click.Path(dir_okay=False), help="CrowdHuman .odgt file; without it only rate + background MSE apply.")
@click.option("--demo-data", is_flag=True, help="Train on the bundled sample photos and their committed boxes.")
@click.option("-o", "--output", default="runs/train", show_default=True, type=click.Path(file_okay=False),
              help="Directory for last.pt, log.csv and loss_curves.png.")
@click.option("-N", "N", default=128, show_default=True, type=click.IntRange(8), help="Channels (latent channels too).")
@click.option("-M", "M", default=2, show_default=True, type=click.IntRange(0), help="Hidden layers per transform.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(16), help="Images are resized to SIZE x SIZE.")
@click.option("--batch-size", default=14, show_default=True, type=click.IntRange(1), help="Images per step.")
@click.option("--epochs", type=click.IntRange(1), help="Passes over the data [default: 1 unless a step or time limit is given].")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many steps.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), help="Stop after this much wall time.")
@click.option("--lr", default=1e-4, show_default=True, help="Adam learning rate of the transforms.")
@click.option("--aux-lr", default=1e-3, show_default=True, help="Adam learning rate of the bottleneck's quantiles.")
@click.option("--lambda-rate", default=0.04, show_default=True, help="Weight of the rate (bits per pixel).")
@click.option("--lambda-bg", default=1.0, show_default=True, help="Weight of the whole-image MSE.")
@click.option("--lambda-hbox", default=0.6, show_default=True, help="Weight of the inverted head-box term (anonymizes).")
@click.option("--lambda-vbox", default=1.0, show_default=True, help="Weight of the person-box MSE (keeps persons).")
@click.option("--flip", is_flag=True, help="Random horizontal flips (boxes flipped alike).")
@click.option("--seed", default=0, show_default=True, help="Seed of weights, shuffling and flips.")
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
@click.option("-o", "--output", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the demo's streams and PNGs (only a directory the demo made is reused).")
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
@click.option("--models", default="demo,256-2,256-1", show_default=True, callback=_csv_list,
              help="Comma list of MODELs: 'demo' (the trained (128, 2) demo), N-M (random weights, latency only; "
                   "needs torch), checkpoints or export directories.")
@click.option("--backends", default="torch,onnxruntime", show_default=True, callback=_csv_list,
              help="torch (the paper's PyTorch + CompressAI pipeline), onnxruntime.")
@click.option("--codecs", default="jpeg,avif", show_default=True, callback=_csv_list,
              help="Classic codecs to time beside ours (through Pillow).")
@click.option("--qualities", default="1,5,10", show_default=True, callback=_csv_list, help="Qualities of the classic codecs.")
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

    from .bench.latency import build_methods, environment, load_images, measure, write_csv
    from .files import expand
    from .samples import sample_photos

    bad = [b for b in backends if b not in BACKENDS]
    if bad or any(c not in ("jpeg", "avif") for c in codecs) or not all(q.isdigit() and 0 <= int(q) <= 100 for q in qualities):
        raise click.BadParameter("backends: {}; codecs: jpeg,avif; qualities: 0..100".format(",".join(BACKENDS)))
    _refuse_existing(output, force)
    loaded = load_images(expand(images, IMAGE_SUFFIXES) if images else sample_photos(), size)
    methods, notes = build_methods(models, backends, codecs, [int(q) for q in qualities], threads, device)
    for note in notes:
        click.echo("note: " + note, err=True)
    if not methods:
        raise click.ClickException("nothing to measure")
    with tqdm(total=len(loaded) * len(methods), unit="run", desc="images x methods", disable=not _progress(progress)) as bar:
        rows, complete = measure(methods, loaded, repeats, warmup, time_budget, progress=bar.update)
    write_csv(output, rows, environment(threads, size), complete, replace=force)
    if not complete:
        click.echo("time budget spent: partial results ({} of {} image x method units)".format(
            sum(int(r["images"]) for r in rows if r["stage"] == "encode"), len(loaded) * len(methods)), err=True)
    click.echo("wrote {} rows to {}".format(len(rows), output))


def _refuse_existing(path, force):
    if path and os.path.lexists(path) and not force:
        raise UsageError("{} exists (--force replaces it)".format(path))


def _progress(option):
    return sys.stderr.isatty() if option is None else option


@bench.command("report")
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--compare", help="'paper' (benchmarks/paper_latency.csv) or a CSV in the same schema.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a Fig. 5-style PNG here.")
@force_option
def bench_report(results, compare, plot, force):
    """Print RESULTS in the layout of the paper's Tab. II/III (optionally against the paper's values)."""
    from .bench.latency import read_csv
    from .bench.report import load_paper, plot as draw, table

    _refuse_existing(plot, force)
    rows = read_csv(results)
    paper = load_paper(None if compare == "paper" else compare) if compare else None
    for line in table(rows, paper):
        click.echo(line)
    if plot:
        draw(rows, plot, replace=force)
        click.echo("\nwrote {}".format(plot))


STREAM_SUFFIXES = (".roi", ".msgpack", ".bin")


def _size(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", value)
    if not m or int(m.group(1)) == 0 or (m.group(2) and int(m.group(2)) == 0):
        raise click.BadParameter("expected SIZE or WIDTHxHEIGHT, e.g. 512 or 640x480")
    width = int(m.group(1))
    return (int(m.group(2) or width), width)


def _batch(sources, output, suffix, force, file_suffixes, parts, model, backend, threads, as_json, progress, verb, work):
    """Plan the outputs (refusing collisions before any work), open the codec, run work(codec, job) per file."""
    from .codec import open_codec
    from .files import Summary, plan, run_batch

    if as_json and output == "-":
        raise UsageError("--json and -o - both want standard output")
    jobs = plan(sources, output, suffix, force, file_suffixes)
    with open_codec(model, backend=backend, parts=parts, threads=threads) as codec:
        summary = run_batch(jobs, lambda job: work(codec, job), Summary(verb, len(jobs)), as_json, _progress(progress))
    if not summary.complete:
        sys.exit(1)


@main.command()
@click.argument("images", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", help="Output .roi file (one input), directory, or - for standard output "
                                     "[default: <stem>.roi beside each input].")
@backend_option
@click.option("--size", callback=_size, help="Resize first, e.g. 512 (512x512, as in the paper) or 640x480.")
@threads_option
@force_option
@json_option
@progress_option
def encode(images, model, output, backend, size, threads, force, as_json, progress):
    """Compress IMAGES (files, globs, directories, or - for standard input) to .roi streams."""
    from .files import STDIO, expand, read_input, write_output
    from .imageio import decode_rgb

    notes = set()

    def work(codec, job):
        rgb, note = decode_rgb(read_input(job.source), job.source)
        if note and note not in notes:
            notes.add(note)
            click.echo("note: {} ({}; further such images not mentioned)".format(note, job.source), err=True)
        data, timing = codec.encode(rgb, size=size)
        write_output(job.target, lambda f: f.write(data), replace=force)
        height, width = (size or rgb.shape[:2])
        bpp = len(data) * 8.0 / (height * width)
        row = {"file": job.source, "output": job.target, "width": width, "height": height, "bytes": len(data),
               "bpp": round(bpp, 5), "transform_ms": round(timing.transform * 1e3, 3),
               "entropy_ms": round(timing.entropy * 1e3, 3), "_pixels": height * width}
        row["_line"] = "{} -> {}  {}x{}  {:.4f} bpp  {} B  analysis {:.1f} ms  entropy coding {:.1f} ms".format(
            job.source, job.target if job.target != STDIO else "stdout", width, height, bpp, len(data),
            row["transform_ms"], row["entropy_ms"])
        return row

    _batch(expand(images, IMAGE_SUFFIXES), output, ".roi", force, (".roi",), ("encoder",), model, backend, threads,
           as_json, progress, "encoded", work)


@main.command()
@click.argument("streams", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", help="Output image (one input; PNG, JPEG, WebP or TIFF by its suffix), directory, "
                                     "or - for standard output [default: <stem>.decoded.png beside each input].")
@click.option("--format", "fmt", type=click.Choice(("png", "jpeg", "webp", "tiff")), default="png", show_default=True,
              help="Image format for directory and standard outputs (-o FILE takes its suffix's).")
@backend_option
@threads_option
@force_option
@json_option
@progress_option
def decode(streams, model, output, fmt, backend, threads, force, as_json, progress):
    """Decode .roi streams (or the reference coder's msgpack packets; - for standard input) to images."""
    from PIL import Image

    from .files import IMAGE_FORMATS, STDIO, expand, read_input, write_output

    suffix = "." + {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)

    def work(codec, job):
        data = read_input(job.source)
        rgb, timing = codec.decode(data)
        target_suffix = os.path.splitext(job.target)[1].lower() if job.target != STDIO else suffix
        pil_format, options = IMAGE_FORMATS[target_suffix]
        write_output(job.target, lambda f: Image.fromarray(rgb).save(f, format=pil_format, **options), replace=force)
        height, width = rgb.shape[:2]
        row = {"file": job.source, "output": job.target, "width": width, "height": height, "bytes": len(data),
               "bpp": round(len(data) * 8.0 / (height * width), 5), "entropy_ms": round(timing.entropy * 1e3, 3),
               "transform_ms": round(timing.transform * 1e3, 3), "_pixels": height * width}
        row["_line"] = "{} -> {}  {}x{}  entropy decoding {:.1f} ms  synthesis {:.1f} ms".format(
            job.source, job.target if job.target != STDIO else "stdout", width, height, row["entropy_ms"],
            row["transform_ms"])
        return row

    _batch(expand(streams, STREAM_SUFFIXES), output, ".decoded" + suffix, force, tuple(IMAGE_FORMATS), ("decoder",),
           model, backend, threads, as_json, progress, "decoded", work)


if __name__ == "__main__":
    sys.exit(main())
