"""Commands that run the codec: encode, decode (batch file rules in roi_trt/files.py) and the demo."""

import sys

import click

from ..errors import UsageError
from ..imageio import IMAGE_SUFFIXES
from .options import (
    backend_option, batch_threads_option, force_option, json_option, memory_option, model_option, progress_option,
    show_progress, size_option_value,
)


@click.command()
@click.option("-o", "--output", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the demo's streams and PNGs (only a directory the demo made is reused).")
@model_option
@backend_option
def demo(output, model, backend):
    """Encode and decode the bundled sample photos; write original|decoded PNGs and print bpp and timings."""
    from ..demo import run_demo
    from ..fileio import check_output

    check_output(output, directory=True)
    run_demo(output, model=model, backend=backend, echo=click.echo)


STREAM_SUFFIXES = (".roi", ".msgpack", ".bin")


def _batch(sources, output, suffix, force, file_suffixes, parts, model, backend, threads, max_memory, as_json, progress,
           verb, stages):
    """Plan the outputs (refusing collisions before any work), open the codec for as many frames at once
    as there are files, run the stages per file."""
    from ..codec import open_codec
    from ..files import Summary, plan, run_batch, stage_workers

    if as_json and output == "-":
        raise UsageError("--json and -o - both want standard output")
    jobs = plan(sources, output, suffix, force, file_suffixes)
    with open_codec(model, backend=backend, parts=parts, threads=threads, max_memory=max_memory,
                    frames=len(jobs)) as codec:
        summary = run_batch(jobs, stages(codec), Summary(verb, len(jobs)), as_json, show_progress(progress),
                            stage_workers(codec))
    if not summary.complete:
        sys.exit(1)


@click.command()
@click.argument("images", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", help="Output .roi file (one input), directory, or - for standard output "
                                     "[default: <stem>.roi beside each input].")
@backend_option
@click.option("--size", callback=size_option_value, help="Resize first, e.g. 512 (512x512, as in the paper) or 640x480.")
@batch_threads_option
@memory_option
@force_option
@json_option
@progress_option
def encode(images, model, output, backend, size, threads, max_memory, force, as_json, progress):
    """Compress IMAGES (files, globs, directories, or - for standard input) to .roi streams."""
    from ..files import encode_stages, expand

    _batch(expand(images, IMAGE_SUFFIXES), output, ".roi", force, (".roi",), ("encoder",), model, backend, threads,
           max_memory, as_json, progress, "encoded", lambda codec: encode_stages(codec, size, replace=force))


@click.command()
@click.argument("streams", nargs=-1, required=True)
@model_option
@click.option("-o", "--output", help="Output image (one input; PNG, JPEG, WebP or TIFF by its suffix), directory, "
                                     "or - for standard output [default: <stem>.decoded.png beside each input].")
@click.option("--format", "fmt", type=click.Choice(("png", "jpeg", "webp", "tiff")), default="png", show_default=True,
              help="Image format for directory and standard outputs (-o FILE takes its suffix's).")
@backend_option
@batch_threads_option
@memory_option
@force_option
@json_option
@progress_option
def decode(streams, model, output, fmt, backend, threads, max_memory, force, as_json, progress):
    """Decode .roi streams (or the reference coder's msgpack packets; - for standard input) to images."""
    from ..files import decode_stages, expand
    from ..imageio import IMAGE_WRITERS

    suffix = "." + {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
    _batch(expand(streams, STREAM_SUFFIXES), output, ".decoded" + suffix, force, tuple(IMAGE_WRITERS), ("decoder",),
           model, backend, threads, max_memory, as_json, progress, "decoded", lambda codec: decode_stages(codec, suffix, replace=force))


COMMANDS = (encode, decode, demo)
