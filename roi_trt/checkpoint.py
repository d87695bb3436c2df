"""Load the checkpoints that exist in the wild into a `RoiAutoencoder`.

Accepted: the reference training output `{"state_dict", "N", "M"}`, the released Lightning
weights (every key under one extra prefix such as `autoencoder.`), a bare state dict, in zip or
legacy (non-zip, `*-nanocompat.pt`) serialization, with CompressAI's old entropy-bottleneck key
names (`_matrix0`, ...) or the current ones (`matrices.0`, ...).
"""

import pickle
import re
import warnings
import zipfile
from collections import namedtuple
from pathlib import Path

import torch

from .errors import CheckpointError
from .fileio import atomic_output
from .model import RoiAutoencoder
from .store import is_torch_checkpoint

_MODULES = ("_encoder", "_decoder", "_bottleneck")
_OLD_BOTTLENECK_KEY = re.compile(r"^_bottleneck\._(matrix|bias|factor)(\d+)$")
# Buffers that hold constants of the layer definitions, not learned state: older files may lack them.
_CONSTANT_BUFFER = re.compile(r"(_reparam\.pedestal|_reparam\.lower_bound\.bound|\.target|likelihood_lower_bound\.bound)$")
# Sized by `EntropyBottleneck.update()`, so they must be resized before loading.
_CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")

CheckpointInfo = namedtuple("CheckpointInfo", "path format serialization prefix N M nm_source")


def _read(path, trust):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not is_torch_checkpoint(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint")
    serialization = "zip" if zipfile.is_zipfile(path) else "legacy"
    try:
        with warnings.catch_warnings():  # foreign files trigger pickle-protocol warnings; errors are reported below
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc):
            raise CheckpointError(
                f"{path}: the file holds Python objects besides tensors; only if you trust its origin "
                f"(unpickling can run code), export it with `roi-trt export --trust-pickle {path}` and use the export"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # torch.load raises many types on foreign files
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    return obj, serialization


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _split(obj, path):
    """-> (state_dict, N or None, M or None, format label)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    if isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], obj.get("N"), obj.get("M"), "reference"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None, None, "state_dict"
    raise CheckpointError(f"{path}: no 'state_dict' entry and not a bare state dict")


def _strip_prefix(state_dict, path):
    """Remove the wrapper prefix (e.g. Lightning's `autoencoder.`), which must be the same for all keys."""
    prefixes, out = set(), {}
    for key, value in state_dict.items():
        parts = key.split(".")
        pos = next((i for i, p in enumerate(parts) if p in _MODULES), None)
        if pos is None:
            out[key] = value  # reported as unexpected later
            continue
        prefixes.add(".".join(parts[:pos]))
        out[".".join(parts[pos:])] = value
    if len(prefixes) > 1:
        raise CheckpointError(f"{path}: keys under several prefixes: {sorted(prefixes)}")
    if not prefixes:
        raise CheckpointError(f"{path}: no _encoder/_decoder/_bottleneck tensors: not a roi-trt model")
    return out, prefixes.pop()


def _rename_old_bottleneck_keys(state_dict):
    renamed = {}
    for key, value in state_dict.items():
        m = _OLD_BOTTLENECK_KEY.match(key)
        if m:
            kind = {"matrix": "matrices", "bias": "biases", "factor": "factors"}[m.group(1)]
            key = f"_bottleneck.{kind}.{m.group(2)}"
        renamed[key] = value
    return renamed


def _infer_nm(state_dict, path):
    try:
        N = int(state_dict["_encoder.encoder.0.weight"].shape[0])
    except KeyError:
        raise CheckpointError(f"{path}: missing tensor _encoder.encoder.0.weight") from None
    gdn = [k for k in state_dict if re.match(r"^_encoder\.encoder\.\d+\.beta$", k)]
    if not gdn:
        raise CheckpointError(f"{path}: no GDN1 layers in the encoder")
    return N, len(gdn) - 1


def load_checkpoint(path, trust=False):
    """-> (RoiAutoencoder in eval mode with entropy tables built, CheckpointInfo)."""
    obj, serialization = _read(path, trust)
    state_dict, file_n, file_m, fmt = _split(obj, path)
    state_dict, prefix = _strip_prefix(state_dict, path)
    state_dict = _rename_old_bottleneck_keys(state_dict)
    N, M = _infer_nm(state_dict, path)
    nm_source = "inferred"
    if file_n is not None or file_m is not None:
        if (file_n, file_m) != (N, M):
            raise CheckpointError(f"{path}: file says N={file_n}, M={file_m} but the weights are N={N}, M={M}")
        nm_source = "file"
    if prefix:
        fmt = f"lightning (prefix '{prefix}.')"

    model = RoiAutoencoder(N, M)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not _CONSTANT_BUFFER.search(k)]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and not k.endswith(_CDF_BUFFERS) and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append("missing tensors: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected))
    if wrong_shape:
        problems.append("wrong shapes: " + ", ".join(wrong_shape))
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))

    bottleneck = model._bottleneck
    for name in _CDF_BUFFERS:
        key = f"_bottleneck.{name}"
        if key in state_dict:
            getattr(bottleneck, name).resize_(state_dict[key].shape)
    model.load_state_dict(state_dict, strict=False)
    if bottleneck._offset.numel() == 0:
        bottleneck.update(force=True)
    model.eval()
    info = CheckpointInfo(str(path), fmt, serialization, prefix, N, M, nm_source)
    return model, info


def random_model(N, M):
    """Random-initialised weights of a configuration (seed 0): the same latency as trained ones, meaningless bpp."""
    torch.manual_seed(0)
    model = RoiAutoencoder(N, M).eval()
    model._bottleneck.update(force=True)
    return model, CheckpointInfo("random", "random", "none", "", N, M, "random")


def save_checkpoint(model, path, **extra):
    """Reference format `{"state_dict", "N", "M"}` (plus extra entries), written atomically."""
    with atomic_output(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "N": model.N, "M": model.M, **extra}, tmp)


def parameter_counts(model):
    parts = {"encoder": model._encoder, "decoder": model._decoder, "entropy_bottleneck": model._bottleneck, "total": model}
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}
