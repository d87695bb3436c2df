"""`roi-trt train`: the reference training loop, with budgets, resumable checkpoints, logs and a report."""

import csv
import math
import os
import time
from collections import namedtuple

import torch
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import RoiTrtError
from ..model import RoiAutoencoder
from .data import RoiDataset, collate
from ..spec import PAPER_LOSS_WEIGHTS, PAPER_TRAINING
from .losses import total_loss

TrainConfig = namedtuple(
    "TrainConfig",
    "data annotations out N M size batch_size epochs max_steps max_minutes lr aux_lr seed device resume "
    "checkpoint_every workers weights flip",
)
LOG_FIELDS = ("step", "epoch", "loss", "bpp", "mse", "psnr", "hbox", "vbox", "aux", "images_per_s", "elapsed_s")
LOSS_FIELDS = ("loss", "bpp", "mse", "psnr", "hbox", "vbox", "aux")


def default_config(**overrides):
    base = dict(
        annotations=None, N=128, M=2, epochs=1, max_steps=None, max_minutes=None, seed=0, device="cpu",
        resume=None, checkpoint_every=500, workers=0, weights=PAPER_LOSS_WEIGHTS, flip=False,
        **PAPER_TRAINING._asdict()
    )
    base.update(overrides)
    return TrainConfig(**base)


def _optimizers(model, config):
    """Adam on the network; a second Adam on the bottleneck's quantiles for its auxiliary loss."""
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    return torch.optim.Adam(main_params, lr=config.lr), torch.optim.Adam(aux_params, lr=config.aux_lr)


def _initial_model(config):
    """-> (model, saved training state or None): fresh, or from any accepted checkpoint with --resume."""
    if not config.resume:
        return RoiAutoencoder(config.N, config.M), None
    model, info = load_checkpoint(config.resume)
    if (info.N, info.M) != (config.N, config.M):
        raise RoiTrtError(f"{config.resume}: checkpoint is ({info.N}, {info.M}), training asks for ({config.N}, {config.M})")
    raw = torch.load(config.resume, map_location="cpu", weights_only=True)
    return model, (raw if "optimizer" in raw else None)  # optimizer state only in our own checkpoints


def train(config, echo=print):
    """Run training; returns the path of the final checkpoint."""
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    dataset = RoiDataset(config.data, config.annotations, size=config.size, flip=config.flip)
    for line in dataset.report.lines():
        echo("skipped " + line)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
        collate_fn=collate, num_workers=config.workers, generator=torch.Generator().manual_seed(config.seed),
    )
    model, saved = _initial_model(config)
    model = model.to(device)
    optimizer, aux_optimizer = _optimizers(model, config)
    step, epoch, history = 0, 0, []
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        aux_optimizer.load_state_dict(saved["aux_optimizer"])
        step, epoch, history = saved.get("step", 0), saved.get("epoch", 0), saved.get("history", [])
    os.makedirs(config.out, exist_ok=True)
    last = os.path.join(config.out, "last.pt")
    log_path = os.path.join(config.out, "log.csv")
    new_log = not (config.resume and os.path.exists(log_path))
    if config.epochs is None and config.max_steps is None and config.max_minutes is None:
        raise RoiTrtError("give a budget: epochs, a step limit or a time limit")
    epochs = config.epochs if config.epochs is not None else math.inf
    total = len(loader) * epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    deadline = time.monotonic() + config.max_minutes * 60 if config.max_minutes else math.inf
    start = time.monotonic()

    def save():
        model._bottleneck.update(force=True)
        save_checkpoint(
            model, last, config=dict(config._asdict(), weights=config.weights._asdict()), history=history,
            step=step, epoch=epoch, optimizer=optimizer.state_dict(), aux_optimizer=aux_optimizer.state_dict(),
        )

    model.train()
    bar_total = None if math.isinf(total) else total
    with open(log_path, "w" if new_log else "a", newline="", encoding="utf-8") as log_file, tqdm(total=bar_total, unit="step") as bar:
        log = csv.DictWriter(log_file, fieldnames=LOG_FIELDS)
        if new_log:
            log.writeheader()
        done, run_epochs = 0, 0
        sums, count = dict.fromkeys(LOSS_FIELDS, 0.0), 0

        def close_epoch():
            """The checkpoint keeps per-epoch means (bounded); every step is in log.csv."""
            nonlocal sums, count
            if count:
                history.append(dict(epoch=epoch, steps=count, **{k: round(v / count, 6) for k, v in sums.items()}))
            sums, count = dict.fromkeys(LOSS_FIELDS, 0.0), 0

        while done < total and run_epochs < epochs and time.monotonic() < deadline:
            before = done
            for batch in loader:
                if batch is None:
                    continue
                tick = time.monotonic()
                x, hboxes, hvalid, vboxes, vvalid = (t.to(device) for t in batch)
                optimizer.zero_grad()
                aux_optimizer.zero_grad()
                x_hat, likelihoods = model(x)
                loss, parts = total_loss(x, x_hat, likelihoods, hboxes, hvalid, vboxes, vvalid, config.weights)
                loss.backward()
                optimizer.step()
                aux = model._bottleneck.loss()
                aux.backward()
                aux_optimizer.step()
                step += 1
                done += 1
                row = dict(
                    step=step, epoch=epoch, loss=loss.item(), aux=aux.item(),
                    psnr=10 * math.log10(1.0 / max(parts["mse"], 1e-12)),
                    images_per_s=x.shape[0] / max(time.monotonic() - tick, 1e-9),
                    elapsed_s=time.monotonic() - start, **parts,
                )
                for key in LOSS_FIELDS:
                    sums[key] += row[key]
                count += 1
                log.writerow(row)
                log_file.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", bpp=f"{row['bpp']:.3f}", psnr=f"{row['psnr']:.1f}",
                                hbox=f"{row['hbox']:.3f}", vbox=f"{row['vbox']:.4f}", img_s=f"{row['images_per_s']:.1f}")
                if step % config.checkpoint_every == 0:
                    save()
                if done >= total or time.monotonic() >= deadline:
                    break
            else:  # the epoch ran to its end
                close_epoch()
                epoch += 1
            if done == before:
                raise RoiTrtError("no image of the dataset could be loaded")
            run_epochs += 1
        close_epoch()  # a partial last epoch
    model.eval()
    save()
    write_report(log_path, os.path.join(config.out, "loss_curves.png"))
    echo(f"trained {done} steps ({step} in total) in {time.monotonic() - start:.0f} s; checkpoint {last}")
    return last


def write_report(log_path, path):
    """Loss components per step from log.csv (all runs, resumed ones included) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import save_png

    import numpy as np

    with open(log_path, newline="", encoding="utf-8") as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    steps = [h["step"] for h in history]
    window = max(1, len(history) // 50)  # per-step values swing with each batch's boxes: show a moving mean too
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, keys in zip(axes, (("loss",), ("bpp",), ("psnr",), ("hbox", "vbox"))):
        for key in keys:
            values = np.array([h[key] for h in history], dtype=float)
            line, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
            if len(values) >= window:
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1:], smooth, color=line.get_color(), label=f"{key} (mean of {window})")
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
