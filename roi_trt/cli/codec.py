"""Commands that run the codec: encode, decode (batch file rules in roi_trt/files.py) and the demo."""

import os
import sys

import click

from ..errors import UsageError
from ..imageio import IMAGE_SUFFIXES
from .options import (
    backend_option, force_option, json_option, model_option, progress_option, show_progress, size_option_value,
    threads_option,
)


@click.command()
@click.option("-o", "--output", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the demo's streams and PNGs (only a directory the demo made is reused).")
@model_option
@backend_option
def demo(output, model, backend):
    """Encode and decode the bundled sample photos; write original|decoded PNGs and print bpp and timings."""
    from ..demo import run_demo

    run_demo(output, model=model, backend=backend, echo=click.echo)


STREAM_SUFFIXES = (".roi", ".msgpack", ".bin")


def _batch(sources, output, suffix, force, file_suffixes, parts, model, backend, threads, as_json, progress, verb,
           stages):
    """Plan the outputs (refusing collisions before any work), open the codec, run the stages per file."""
    from ..codec import open_codec
    from ..files import Summary, plan, run_batch

    if as_json and output == "-":
        raise UsageError("--json and -o - both want standard output")
    jobs = plan(sources, output, suffix, force, file_suffixes)
    with open_codec(model, backend=backend, parts=parts, threads=threads) as codec:
        summary = run_batch(jobs, stages(codec), Summary(verb, len(jobs)), as_json, show_progress(progress))
    if not summary.complete:
        sys.exit(1)


def _shown(target):
    from ..files import STDIO

    return "stdout" if target == STDIO else target


@click.command()
@click.argument("images", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", help="Output .roi file (one input), directory, or - for standard output "
                                     "[default: <stem>.roi beside each input].")
@backend_option
@click.option("--size", callback=size_option_value, help="Resize first, e.g. 512 (512x512, as in the paper) or 640x480.")
@threads_option
@force_option
@json_option
@progress_option
def encode(images, model, output, backend, size, threads, force, as_json, progress):
    """Compress IMAGES (files, globs, directories, or - for standard input) to .roi streams."""
    from ..files import expand, read_input, write_output
    from ..imageio import decode_rgb

    def stages(codec):
        def load(job):
            rgb, note = decode_rgb(read_input(job.source), job.source)
            return job, codec.prepare(rgb, size), note

        def transform(state):
            job, frame, note = state
            latent, seconds = codec.analyze(frame)
            return job, frame, note, latent, seconds

        def finish(state):
            job, frame, note, latent, transform_s = state
            data, entropy_s = codec.finish_encode(frame, latent)
            write_output(job.target, lambda f: f.write(data), replace=force)
            pixels = frame.height * frame.width
            bpp = len(data) * 8.0 / pixels
            row = {"file": job.source, "output": job.target, "width": frame.width, "height": frame.height,
                   "bytes": len(data), "bpp": round(bpp, 5), "transform_ms": round(transform_s * 1e3, 3),
                   "entropy_ms": round(entropy_s * 1e3, 3), "_pixels": pixels, "_note": note}
            row["_line"] = "{} -> {}  {}x{}  {:.4f} bpp  {} B  analysis {:.1f} ms  entropy coding {:.1f} ms".format(
                job.source, _shown(job.target), frame.width, frame.height, bpp, len(data), row["transform_ms"],
                row["entropy_ms"])
            return row

        return load, transform, finish

    _batch(expand(images, IMAGE_SUFFIXES), output, ".roi", force, (".roi",), ("encoder",), model, backend, threads,
           as_json, progress, "encoded", stages)


@click.command()
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

    from ..files import IMAGE_FORMATS, STDIO, expand, read_input, write_output

    suffix = "." + {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)

    def stages(codec):
        def load(job):
            data = read_input(job.source)
            latent, crop, entropy_s = codec.parse(data)
            return job, len(data), latent, crop, entropy_s

        def transform(state):
            job, nbytes, latent, crop, entropy_s = state
            x_hat, transform_s = codec.synthesize(latent)
            return job, nbytes, x_hat, crop, entropy_s, transform_s

        def finish(state):
            job, nbytes, x_hat, crop, entropy_s, transform_s = state
            rgb = codec.finish_decode(x_hat, crop)
            target_suffix = os.path.splitext(job.target)[1].lower() if job.target != STDIO else suffix
            pil_format, options = IMAGE_FORMATS[target_suffix]
            write_output(job.target, lambda f: Image.fromarray(rgb).save(f, format=pil_format, **options), replace=force)
            height, width = rgb.shape[:2]
            row = {"file": job.source, "output": job.target, "width": width, "height": height, "bytes": nbytes,
                   "bpp": round(nbytes * 8.0 / (height * width), 5), "entropy_ms": round(entropy_s * 1e3, 3),
                   "transform_ms": round(transform_s * 1e3, 3), "_pixels": height * width}
            row["_line"] = "{} -> {}  {}x{}  entropy decoding {:.1f} ms  synthesis {:.1f} ms".format(
                job.source, _shown(job.target), width, height, row["entropy_ms"], row["transform_ms"])
            return row

        return load, transform, finish

    _batch(expand(streams, STREAM_SUFFIXES), output, ".decoded" + suffix, force, tuple(IMAGE_FORMATS), ("decoder",),
           model, backend, threads, as_json, progress, "decoded", stages)


COMMANDS = (encode, decode, demo)
