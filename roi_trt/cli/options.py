"""Options and small helpers shared by the commands."""

import re
import sys

import click

from ..backends import BACKENDS
from ..errors import RoiTrtError


def shape_option_value(ctx, param, value):
    """BATCHxHEIGHTxWIDTH or HEIGHTxWIDTH (batch 1) -> (batch, height, width)."""
    if value is None:
        return None
    m = re.fullmatch(r"(?:(\d+)x)?(\d+)x(\d+)", value)
    if not m:
        raise click.BadParameter("expected BATCHxHEIGHTxWIDTH or HEIGHTxWIDTH, e.g. 1x512x512")
    return int(m.group(1) or 1), int(m.group(2)), int(m.group(3))


def size_option_value(ctx, param, value):
    """SIZE or WIDTHxHEIGHT -> (height, width), within what a .roi stream holds."""
    from ..bitstream import check_image_size

    if value is None:
        return None
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", value)
    if not m or int(m.group(1)) == 0 or (m.group(2) and int(m.group(2)) == 0):
        raise click.BadParameter("expected SIZE or WIDTHxHEIGHT, e.g. 512 or 640x480")
    width = int(m.group(1))
    size = (int(m.group(2) or width), width)
    try:
        check_image_size(*size)
    except RoiTrtError as exc:
        raise click.BadParameter(str(exc)) from None
    return size


def memory_option_value(ctx, param, value):
    """'384M', '1.5G', '2048K' or bytes -> bytes."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)i?B?", value.strip(), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter("expected a size such as 384M or 1.5G")
    return int(float(m.group(1)) * 1024 ** " KMG".index(m.group(2).upper() or " "))


def csv_list(ctx, param, value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def show_progress(option):
    """--progress/--no-progress, else a bar only when stderr is a terminal."""
    return sys.stderr.isatty() if option is None else option


trust_option = click.option(
    "--trust-pickle", is_flag=True, help="Allow checkpoints that contain arbitrary Python objects (runs their code)."
)
model_option = click.option(
    "-m", "--model", metavar="MODEL",
    help="'demo' (the shipped model), an export directory, a checkpoint, paper:NAME (the authors' released weights, "
         "see `roi-trt models`) or N-M (random weights) [default: demo].",
)
backend_option = click.option(
    "--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
    help="auto: onnxruntime (CUDA if onnxruntime-gpu finds a GPU, else CPU).",
)
threads_option = click.option("--threads", type=click.IntRange(1), help="CPU threads for the transforms.")
batch_threads_option = click.option(
    "--threads", type=click.IntRange(1),
    help="CPU threads per transform [default: every core; with at least one file per core (or --threads 1) on CPU, "
         "one frame per core side by side, single-threaded].",
)
force_option = click.option("--force", is_flag=True, help="Replace existing output files (never an input).")
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per file, then a summary.")
progress_option = click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: only when stderr is a terminal]."
)
memory_option = click.option(
    "--max-memory", callback=memory_option_value, metavar="SIZE",
    help="Working memory of a frame's transform, e.g. 384M or 1.5G; larger images run in overlapping tiles with "
         "the same result, and frames run side by side only as many as a quarter of the free memory holds "
         "[default: 256M, or a quarter of the free memory if less].",
)
