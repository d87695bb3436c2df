"""The `roi-trt` command line. Heavy modules (torch, onnx, TensorRT) are imported inside commands only."""

import os
import re
import sys
import warnings

import click

from . import __version__
from .errors import RoiTrtError


# compressai's import triggers a torch deprecation warning that says nothing to a CLI user.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


class _Group(click.Group):
    """Turn user-facing errors into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RoiTrtError as exc:
            raise click.ClickException(str(exc)) from None


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


if __name__ == "__main__":
    sys.exit(main())
