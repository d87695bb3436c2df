"""Commands for TensorRT: build engines on this GPU, and say what this machine can run."""

import os

import click

from ..artifacts import GDN_MODES
from ..build.targets import NAMES
from ..spec import DECONV_FORMS, PARTS, TENSORRT_DECONV
from .options import force_option, shape_option_value


tensorrt_home_option = click.option(
    "--tensorrt-home", type=click.Path(file_okay=False, exists=True), envvar="ROI_TRT_TENSORRT_HOME",
    help="A directory where NVIDIA's TensorRT wheel or tarball was unpacked (its lib/ and Python package), for "
         "machines without pip [default: $ROI_TRT_TENSORRT_HOME, else the installed tensorrt].")


def use_tensorrt_home(home):
    """What --tensorrt-home says, for every later import of tensorrt in this process (build, load, run)."""
    from ..backends.tensorrt import HOME_VAR

    if home:
        os.environ[HOME_VAR] = os.path.abspath(home)


@click.command()
@click.argument("model", required=False)
@click.option("--target", type=click.Choice(NAMES), default="auto", show_default=True,
              help="The GPU the engine is built on and for (engines run only where they were built); auto: this GPU's "
                   "target, the nearest of its generation, or a generic FP32 build (said in one line).")
@click.option("--part", type=click.Choice(("encoder", "decoder", "both")), default="both", show_default=True,
              help="encoder for cameras, decoder for servers.")
@click.option("--gdn", type=click.Choice(GDN_MODES), default="inline", show_default=True,
              help="GDN1 as standard TensorRT layers, or as the fused plugin (build engines/ first).")
@click.option("--deconv", type=click.Choice(DECONV_FORMS), default=TENSORRT_DECONV, show_default=True,
              help="The decoder's transposed convolutions as TensorRT deconvolution layers, or in phases as ONNX "
                   "Runtime runs them fastest (whichever the export wrote): build both and time them on the target.")
@click.option("--shape", callback=shape_option_value, help="One image shape for the engine (min = opt = max), e.g. 1x512x512.")
@click.option("--min", "min_shape", callback=shape_option_value, help="Smallest image of the profile [default: one latent unit].")
@click.option("--opt", "opt_shape", callback=shape_option_value, help="Image shape TensorRT tunes for [default: the target's, 1x512x512].")
@click.option("--max", "max_shape", callback=shape_option_value,
              help="Largest image (larger ones are tiled); an execution context reserves activation memory for it "
                   "[default: the target's: 1x768x768 on a Nano, 1x1088x1920 on an Orin, 4x1088x1920 on servers].")
@click.option("--plugin", type=click.Path(dir_okay=False), help="GDN1 plugin library [default: $ROI_TRT_PLUGIN, else engines/build/].")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Timing cache reused across builds [default: one per TensorRT and GPU in the cache].")
@click.option("--version-compatible", is_flag=True, help="An engine later TensorRT releases can run (8.6+; --gdn inline only).")
@click.option("--device", default=0, show_default=True, type=click.IntRange(0), help="CUDA device index.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Engine directory [default: engines/<model>-<target>].")
@force_option
@tensorrt_home_option
def build(model, target, part, gdn, deconv, shape, min_shape, opt_shape, max_shape, plugin, timing_cache, version_compatible,
          device, output, force, tensorrt_home):
    """Build FP32 TensorRT engines of MODEL [default: demo] on this machine's GPU, with sidecars.

    The engine directory also holds the export's manifest and entropy tables, so it is a MODEL itself:
    `roi-trt encode IMG -m engines/demo-nano`.
    """
    from ..artifacts import MANIFEST, copy_model_files, directory_lock, read_manifest
    from ..build.engine import build_engine
    from ..build.targets import input_shape
    from ..errors import UsageError
    from ..backends.tensorrt import import_tensorrt
    from ..fileio import check_output
    from ..store import resolve

    use_tensorrt_home(tensorrt_home)
    resolved = resolve(model)
    if shape and (min_shape or opt_shape or max_shape):
        raise UsageError("give --shape or --min/--opt/--max, not both")
    output = output or os.path.join("engines", "{}-{}".format(resolved.name, target))
    check_output(output, directory=True, beside=True)
    trt = import_tensorrt("roi-trt build")
    parts = PARTS if part == "both" else (part,)
    with directory_lock(output):  # one builder at a time writes an engine directory
        if os.path.isfile(os.path.join(output, MANIFEST)) and read_manifest(output)["fingerprint"] != resolved.fingerprint:
            raise UsageError("{} holds engines of another model: choose another -o".format(output))
        for name in parts:
            shapes = None
            if shape or min_shape or opt_shape or max_shape:
                images = (shape,) * 3 if shape else (min_shape, opt_shape, max_shape)
                if None in images:
                    raise UsageError("--min, --opt and --max go together")
                shapes = tuple(input_shape(name, image, resolved.N, resolved.M) for image in images)
            path = build_engine(resolved.onnx_file(name, "tensorrt", trt.__version__), name, resolved.N, resolved.M,
                                resolved.fingerprint, target=target, shapes=shapes, gdn_mode=gdn, plugin_path=plugin,
                                out_dir=output, timing_cache=timing_cache, device=device,
                                version_compatible=version_compatible, replace=force, log=click.echo, deconv=deconv)
            click.echo("built {}".format(path))
        copy_model_files(resolved.export_dir(), output)


@click.command()
@click.option("--selftest", is_flag=True, help="Build every engine of MODEL on this GPU (both parts, both GDN modes, "
                                               "both decoder forms), check each against ONNX Runtime on the CPU, time "
                                               "them, and check the GDN1 plugin alone.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="With --selftest: write selftest.csv, selftest.txt and the engines into this directory (an earlier "
                   "report is replaced only with --force).")
@click.option("-m", "--model", default="demo", show_default=True, metavar="MODEL", help="The model the self-test builds.")
@click.option("--device", default=0, show_default=True, type=click.IntRange(0), help="CUDA device of the self-test.")
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(1), help="Timed runs per measurement.")
@tensorrt_home_option
@force_option
def doctor(selftest, report_dir, model, device, repeats, tensorrt_home, force):
    """What is installed and usable here for each target, and what is missing; --selftest proves the GPU path."""
    import sys

    from ..doctor import report
    from ..fileio import check_output
    from ..selftest import CSV, SUMMARY, run

    if report_dir:  # an earlier report (and the engines beside it) stays unless --force
        check_output(report_dir, directory=True)
        for name in (CSV, SUMMARY):
            check_output(os.path.join(report_dir, name), replace=force)
    use_tensorrt_home(tensorrt_home)
    for line in report():
        click.echo(line)
    if selftest and not run(model, report_dir, device, repeats, log=click.echo):
        sys.exit(1)


COMMANDS = (build, doctor)
