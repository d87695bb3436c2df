"""`roi-trt export`: checkpoint -> ONNX transforms, entropy tables and manifest, verified against PyTorch.

Verification is judged against PyTorch in float64: float32 itself is not exact, and a model with a
high gain amplifies every rounding, so ONNX Runtime's error is bounded by a small factor of PyTorch
float32's own error (and by an absolute floor where float32 is that precise).
"""

import copy
import json
import os
import platform

import numpy as np
import onnx
import torch

from . import __version__
from .artifacts import (
    CUSTOM_OP, ENTROPY_TABLES, FORMAT, FORMAT_VERSION, MANIFEST, ONNX_FILES, RUNTIMES, STANDARD_OPS, VARIANTS,
    file_sha256, is_export, replacing_dir, write_json_atomic,
)
from .errors import ExportError
from .imageio import load_rgb, resize, to_nchw
from .model import entropy_tables, fingerprint
from .onnx_emit import transform_models
from .onnx_rewrite import standard_ops_model, with_deconv
from .samples import sample_photos
from .spec import (DECONV_FORMS, EXPORT_DECONV, GDN1_DOMAIN, GDN1_INVERSE, GDN1_OP, GDN1_PLUGIN_NAMESPACE,
                   GDN1_PLUGIN_VERSION, MIN_SYMBOL_AGREEMENT, PARTS)

# Highest opset TensorRT 8.2 (JetPack 4.6, the Jetson Nano's last release) parses.
DEFAULT_OPSET = 13
MIN_OPSET = 13  # Unsqueeze takes its axes as an input from opset 13 on; the function body relies on it.
# ONNX Runtime's max |error| against float64 may reach FACTOR x PyTorch float32's own, and always ABS_FLOOR.
ERROR_FACTOR = 4.0
ABS_FLOOR = 1e-4
VERIFY_SIZE = 256  # side of the random verification input


def _verification_inputs(model, shape):
    """A real photo and a seeded random image, sized for the export's shape."""
    d = model.downsampling
    batch, height, width = shape if shape else (1, 512, 512)
    photos = sample_photos()
    rgb, _ = load_rgb(photos[0])
    photo = np.repeat(to_nchw(resize(rgb, (height, width))), batch, axis=0)
    rand_h, rand_w = (height, width) if shape else (VERIFY_SIZE + d, VERIFY_SIZE)
    noise = np.random.default_rng(0).random((batch, 3, rand_h, rand_w), dtype=np.float32)
    return {os.path.basename(photos[0]): photo, "random": noise}


def _run_torch(module, x, dtype):
    with torch.no_grad():
        return module(torch.from_numpy(x).to(dtype)).numpy().astype(np.float64)


def _judge(row, label, variant):
    failed = [
        "{} error {:.3g} > {:.3g}".format(what, row[what + "_max_abs_diff"], row[what + "_tolerance"])
        for what in ("latent", "image")
        if not row[what + "_max_abs_diff"] <= row[what + "_tolerance"]  # NaN fails too
    ]
    if row["symbol_agreement"] < MIN_SYMBOL_AGREEMENT:
        failed.append("symbols equal {:.4%} < {:.2%}".format(row["symbol_agreement"], MIN_SYMBOL_AGREEMENT))
    if failed:
        raise ExportError("verification failed on {} ({}): {}".format(label, variant, "; ".join(failed)))


def verify(model, export_dir, shape=None):
    """Both ONNX variants in ONNX Runtime against PyTorch float64; raise ExportError past the tolerances.

    Returns one row per (input, variant) with ONNX Runtime's and PyTorch float32's errors and the bounds.
    """
    import onnxruntime as ort

    for name in ONNX_FILES:
        onnx.checker.check_model(os.path.join(export_dir, name), full_check=True)
    reference = copy.deepcopy(model).double()
    medians = model._bottleneck.quantiles[:, 0, 1].detach().numpy().astype(np.float64).reshape(1, -1, 1, 1)
    report = []
    for label, x in _verification_inputs(model, shape).items():
        y64 = _run_torch(reference._encoder, x, torch.float64)
        symbols = np.rint(y64 - medians)
        y_hat = (symbols + medians).astype(np.float32)
        x64 = _run_torch(reference._decoder, y_hat, torch.float64)
        torch_latent = float(np.abs(_run_torch(model._encoder, x, torch.float32) - y64).max())
        torch_image = float(np.abs(_run_torch(model._decoder, y_hat, torch.float32) - x64).max())
        for variant, files in VARIANTS.items():
            encoder, decoder = (
                ort.InferenceSession(os.path.join(export_dir, files[part]), providers=["CPUExecutionProvider"])
                for part in PARTS
            )
            y = encoder.run(None, {"image": x})[0].astype(np.float64)
            x_hat = decoder.run(None, {"latent_hat": y_hat})[0].astype(np.float64)
            row = {
                "input": label,
                "variant": variant,
                "latent_max_abs_diff": float(np.abs(y - y64).max()),
                "torch_fp32_latent_max_abs_diff": torch_latent,
                "latent_tolerance": max(ABS_FLOOR, ERROR_FACTOR * torch_latent),
                "symbol_agreement": float(np.mean(np.rint(y - medians) == symbols)),
                "image_max_abs_diff": float(np.abs(x_hat - x64).max()),
                "torch_fp32_image_max_abs_diff": torch_image,
                "image_tolerance": max(ABS_FLOOR, ERROR_FACTOR * torch_image),
            }
            report.append(row)
            _judge(row, label, variant)
    return report


def _tool_versions():
    import compressai
    import onnxruntime

    return {
        "roi_trt": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "compressai": compressai.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _replaceable(fingerprint_hex, replace_other):
    """The check replacing_dir runs on an existing `out_dir`: only an earlier export may be replaced, and one
    of other weights only when asked (the streams it encoded decode only with it)."""
    def check(path):
        if not is_export(path):
            raise ExportError("{} exists and is not an earlier export: choose another output directory".format(path))
        if os.listdir(path) and not replace_other:
            try:  # any format version: an old export of these weights is made anew
                with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
                    earlier = json.load(f).get("fingerprint")
            except (OSError, ValueError, AttributeError):
                earlier = None
            if earlier != fingerprint_hex:
                raise ExportError("{} holds the export of other weights (fingerprint {}), whose streams decode only with "
                                  "it: --force replaces it".format(path, (earlier or "unknown")[:16]))
    return check


def export_model(model, info, out_dir, opset=DEFAULT_OPSET, shape=None, deconv=EXPORT_DECONV, replace_other=False):
    """Write a complete, verified export directory; it replaces `out_dir` only once everything passed.

    `deconv`: "polyphase" computes each hidden transposed convolution as one Conv per output phase (the
    same values; ONNX Runtime's CPU kernels run it faster, benchmarks/roofline.py), "convtranspose" keeps
    them (onnx_rewrite.polyphase_deconv_model).
    """
    if deconv not in DECONV_FORMS:
        raise ExportError("deconv must be one of {}".format(", ".join(DECONV_FORMS)))
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise ExportError(f"opset {opset} not supported (choose {MIN_OPSET}..{max_opset})")
    if shape is not None:
        batch, height, width = shape
        d = model.downsampling
        if batch < 1 or height % d or width % d or height < d or width < d:
            raise ExportError(f"fixed shape {batch}x{height}x{width}: height and width must be positive multiples of {d}")
    with replacing_dir(os.path.abspath(out_dir), _replaceable(fingerprint(model), replace_other)) as staging:
        for part, proto in zip(PARTS, transform_models(model, opset, shape)):
            proto = with_deconv(proto, deconv)
            onnx.save(proto, os.path.join(staging, VARIANTS[CUSTOM_OP][part]))
            onnx.save(standard_ops_model(proto), os.path.join(staging, VARIANTS[STANDARD_OPS][part]))
        entropy_tables(model._bottleneck).save(os.path.join(staging, ENTROPY_TABLES))
        report = verify(model, staging, shape)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "N": model.N,
            "M": model.M,
            "latent_channels": model.N,
            "downsampling": model.downsampling,
            "opset": opset,
            "deconv": deconv,
            "shape": None if shape is None else dict(zip(("batch", "height", "width"), shape)),
            "input": {"layout": "NCHW", "color": "RGB", "dtype": "float32", "range": [0.0, 1.0]},
            "gdn1_op": {
                "domain": GDN1_DOMAIN, "op_type": GDN1_OP, "attribute": GDN1_INVERSE,
                "plugin_version": GDN1_PLUGIN_VERSION, "plugin_namespace": GDN1_PLUGIN_NAMESPACE,
            },
            "fingerprint": fingerprint(model),
            "variants": VARIANTS,
            "runtimes": RUNTIMES,
            "sha256": {name: file_sha256(os.path.join(staging, name)) for name in ONNX_FILES + [ENTROPY_TABLES]},
            "verification_rule": "max |error| vs PyTorch float64 <= max({}, {} x PyTorch float32's); symbols equal "
                                 ">= {:.2%}".format(ABS_FLOOR, ERROR_FACTOR, MIN_SYMBOL_AGREEMENT),
            "source": {"checkpoint": os.path.basename(info.path), "format": info.format, "serialization": info.serialization},
            "verification": report,
            "tools": _tool_versions(),
        }
        write_json_atomic(os.path.join(staging, MANIFEST), manifest)
    return manifest
