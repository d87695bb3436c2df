"""The `roi-trt` command line: thin commands over the library, one module per topic. Heavy modules
(torch, onnx, TensorRT) are imported inside commands only, and a missing optional one is reported in
one line with its install command."""

import os
import signal
import sys
import warnings

import click
from PIL import Image

from .. import __version__
from ..errors import RoiTrtError, UsageError
from ..optional import import_failure
from . import audit, bench, codec, engines, models, serve, train

# compressai's import triggers a torch deprecation warning that says nothing to a CLI user.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
# Pillow warns about an image over its decompression-bomb limit, which imageio then refuses in one line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


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
        except ImportError as exc:  # an optional package missing, or installed but broken
            error = import_failure(exc, "roi-trt {}".format(ctx.invoked_subcommand))
            if error is None:
                raise
            raise click.ClickException(str(error)) from None
        except BrokenPipeError:  # `| head`: the reader is gone; stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            sys.exit(128 + signal.SIGPIPE)
        except OSError as exc:  # unwritable output directory, full disk, ...
            where = "{}: ".format(exc.filename) if exc.filename else ""
            raise click.ClickException(where + (exc.strerror or str(exc))) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roi-trt")
def main():
    """Deploy anonymizing learned image compression: export, build, encode, decode, benchmark."""


for module in (models, engines, train, codec, serve, bench, audit):
    for command in module.COMMANDS:
        main.add_command(command)
