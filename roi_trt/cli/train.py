"""`roi-trt train`: the ROI loss on CrowdHuman or a folder of images (torch side)."""

import os

import click

from ..fileio import check_output
from ..spec import PAPER_LOSS_WEIGHTS as PAPER, PAPER_TRAINING


@click.command()
@click.argument("images", required=False, type=click.Path(file_okay=False))
@click.option("--annotations", type=click.Path(dir_okay=False), help="CrowdHuman .odgt file; without it only rate + background MSE apply.")
@click.option("--demo-data", is_flag=True, help="Train on the bundled sample photos and their committed boxes.")
@click.option("-o", "--output", default="runs/train", show_default=True, type=click.Path(file_okay=False),
              help="Directory for last.pt, log.csv and loss_curves.png.")
@click.option("-N", "N", default=128, show_default=True, type=click.IntRange(8), help="Channels (latent channels too).")
@click.option("-M", "M", default=2, show_default=True, type=click.IntRange(0), help="Hidden layers per transform.")
@click.option("--size", default=PAPER_TRAINING.size, show_default=True, type=click.IntRange(16), help="Images are resized to SIZE x SIZE.")
@click.option("--batch-size", default=PAPER_TRAINING.batch_size, show_default=True, type=click.IntRange(1), help="Images per step.")
@click.option("--epochs", type=click.IntRange(1), help="Passes over the data [default: 1 unless a step or time limit is given].")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many steps.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), help="Stop after this much wall time.")
@click.option("--lr", default=PAPER_TRAINING.lr, show_default=True, help="Adam learning rate of the transforms.")
@click.option("--aux-lr", default=PAPER_TRAINING.aux_lr, show_default=True, help="Adam learning rate of the bottleneck's quantiles.")
@click.option("--lambda-rate", default=PAPER.rate, show_default=True, help="Weight of the rate (bits per pixel).")
@click.option("--lambda-bg", default=PAPER.background, show_default=True, help="Weight of the whole-image MSE.")
@click.option("--lambda-hbox", default=PAPER.hbox, show_default=True, help="Weight of the inverted head-box term (anonymizes).")
@click.option("--lambda-vbox", default=PAPER.vbox, show_default=True, help="Weight of the person-box MSE (keeps persons).")
@click.option("--flip", is_flag=True, help="Random horizontal flips (boxes flipped alike).")
@click.option("--seed", default=0, show_default=True, help="Seed of weights, shuffling and flips.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--workers", default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--checkpoint-every", default=500, show_default=True, help="Steps between checkpoints.")
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue from a checkpoint (optimizer state too if it is ours).")
def train(images, annotations, demo_data, output, N, M, size, batch_size, epochs, max_steps, max_minutes, lr, aux_lr,
          lambda_rate, lambda_bg, lambda_hbox, lambda_vbox, flip, seed, device, workers, checkpoint_every, resume):
    """Train a codec with the ROI loss on IMAGES (CrowdHuman layout or a plain folder)."""
    if demo_data == bool(images):
        raise click.UsageError("give IMAGES or --demo-data (not both)")
    check_output(output, directory=True)
    from ..spec import LossWeights
    from ..train.trainer import default_config, train as run

    if demo_data:
        from ..train.demo_data import write_dataset

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


COMMANDS = (train,)
