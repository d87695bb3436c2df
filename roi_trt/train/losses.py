"""The paper's loss: rate + background MSE + ROI terms over head (inverted) and person boxes."""

import math

import torch

from ..spec import PAPER_LOSS_WEIGHTS


def bits_per_pixel(likelihoods, num_pixels):
    """R = -sum(log2 p) / (batch * H * W)."""
    return -torch.log(likelihoods).sum() / (math.log(2) * num_pixels)


def box_mse(x, x_hat, boxes):
    """Per-box MSE between crops of x and x_hat, for every box of every image at once.

    x, x_hat: [B, C, H, W]; boxes: [B, K, 4] integer (x0, y0, x1, y1), exclusive ends, already clipped.
    Uses a summed-area table of the squared error (float64, so small boxes stay exact on 512x512
    images): the cost is one cumsum per batch, independent of the number of boxes.
    Returns [B, K]; boxes with zero area give 0.
    """
    se = (x - x_hat).pow(2).mean(dim=1).double()  # [B, H, W], channel mean
    table = torch.nn.functional.pad(se.cumsum(1).cumsum(2), (1, 0, 1, 0))  # [B, H+1, W+1]
    B, K = boxes.shape[:2]
    b = boxes.long()
    x0, y0, x1, y1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    flat = table.reshape(B, -1)
    stride = table.shape[2]

    def at(yy, xx):
        return flat.gather(1, yy * stride + xx)

    sums = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    area = ((x1 - x0) * (y1 - y0)).double()
    return torch.where(area > 0, sums / area.clamp(min=1), torch.zeros_like(sums)).to(x.dtype)


def roi_loss(x, x_hat, boxes, valid, k):
    """Generalized ROI loss L_k: per image, the mean over its boxes of MSE (k=0) or 1-MSE (k=1).

    Images' terms are summed and divided by the batch size; images without boxes contribute 0.
    valid: [B, K] bool marking real boxes in the padded `boxes` tensor.
    """
    mse = box_mse(x, x_hat, boxes)
    term = 1.0 - mse if k == 1 else mse
    term = term * valid
    count = valid.sum(dim=1)
    per_image = torch.where(count > 0, term.sum(dim=1) / count.clamp(min=1), torch.zeros_like(count, dtype=term.dtype))
    return per_image.sum() / x.shape[0]


def total_loss(x, x_hat, likelihoods, hboxes, hvalid, vboxes, vvalid, weights=PAPER_LOSS_WEIGHTS):
    """-> (loss, dict of components as floats)."""
    B, _, H, W = x.shape
    parts = {
        "bpp": bits_per_pixel(likelihoods, B * H * W),
        "mse": torch.nn.functional.mse_loss(x_hat, x),
        "hbox": roi_loss(x, x_hat, hboxes, hvalid, k=1),
        "vbox": roi_loss(x, x_hat, vboxes, vvalid, k=0),
    }
    loss = (
        weights.rate * parts["bpp"]
        + weights.background * parts["mse"]
        + weights.hbox * parts["hbox"]
        + weights.vbox * parts["vbox"]
    )
    return loss, {name: float(value.detach()) for name, value in parts.items()}
