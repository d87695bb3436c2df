"""Torch-side test helpers: models with non-trivial weights and checkpoints in every layout."""

import torch

from roi_trt.model import RoiAutoencoder


def make_model(N=128, M=2, seed=0):
    """A model whose GDN and entropy parameters differ from their initial values (like a trained one)."""
    torch.manual_seed(seed)
    model = RoiAutoencoder(N, M)
    with torch.no_grad():
        for _, gdn in model.gdn_layers():
            gdn.gamma.add_(torch.rand_like(gdn.gamma) * 0.02)
            gdn.beta.add_(torch.rand_like(gdn.beta) * 0.2)
        model._bottleneck.quantiles.add_(torch.randn(N, 1, 1) * 0.5)
        model._bottleneck.quantiles[:, 0, 0] -= 4
        model._bottleneck.quantiles[:, 0, 2] += 4
    model._bottleneck.update(force=True)
    return model.eval()


def save(obj, path, legacy=False):
    torch.save(obj, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


def old_bottleneck_names(state_dict):
    """Key names of CompressAI < 1.2 (`_matrix0`, `_bias0`, `_factor0`), as in the reference's files."""
    out = {}
    for key, value in state_dict.items():
        for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            key = key.replace("_bottleneck." + new, "_bottleneck." + old)
        out[key] = value
    return out
