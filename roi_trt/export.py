"""`roi-trt export`: checkpoint -> ONNX transforms, entropy tables and manifest, verified against PyTorch."""

import hashlib
import os
import platform
import shutil
import tempfile

import numpy as np
import onnx
import torch

from . import __version__
from .errors import ExportError
from .fileio import default_mode
from .imageio import load_rgb, resize, to_nchw
from .manifest import ENTROPY_TABLES, FORMAT, FORMAT_VERSION, MANIFEST, EntropyTables, file_sha256, write_json_atomic
from .onnx_graph import DOMAIN, GDN_OP, PLUGIN_VERSION, standard_ops_model, transform_models
from .samples import sample_photos

# Highest opset TensorRT 8.2 (JetPack 4.6, the Jetson Nano's last release) parses.
DEFAULT_OPSET = 13
MIN_OPSET = 13  # Unsqueeze takes its axes as an input from opset 13 on; the function body relies on it.
LATENT_TOLERANCE = 1e-4
IMAGE_TOLERANCE = 1e-4
MIN_SYMBOL_AGREEMENT = 0.9999
VERIFY_SIZE = 256  # side of the random verification input
FILES = {
    "encoder": "encoder.onnx",
    "decoder": "decoder.onnx",
    "encoder_std": "encoder.std.onnx",
    "decoder_std": "decoder.std.onnx",
    "entropy": ENTROPY_TABLES,
}


def fingerprint(model):
    """SHA-256 over every tensor of the state dict (name, dtype, shape, bytes), keys sorted.

    Covers the transforms and the entropy tables, so a bitstream can be tied to the exact model.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def entropy_tables(eb):
    """The EntropyBottleneck's coding tables, as the torch-free runtime reads them."""
    return EntropyTables(
        eb._quantized_cdf.numpy(), eb._cdf_length.numpy(), eb._offset.numpy(), eb.quantiles[:, 0, 1].detach().numpy()
    )


def _verification_inputs(model, shape):
    """A real photo and a seeded random image, sized for the export's shape."""
    d = model.downsampling
    batch, height, width = shape if shape else (1, 512, 512)
    photos = sample_photos()
    if not photos:
        raise ExportError("no sample photo found for verification (install scikit-image or matplotlib)")
    rgb, _ = load_rgb(photos[0])
    photo = np.repeat(to_nchw(resize(rgb, (height, width))), batch, axis=0)
    rand_h, rand_w = (height, width) if shape else (VERIFY_SIZE + d, VERIFY_SIZE)
    noise = np.random.default_rng(0).random((batch, 3, rand_h, rand_w), dtype=np.float32)
    return {os.path.basename(photos[0]): photo, "random": noise}


def verify(model, export_dir, shape=None):
    """Run both ONNX variants in ONNX Runtime against PyTorch; raise ExportError past the tolerances."""
    import onnxruntime as ort

    for name in ("encoder", "decoder", "encoder_std", "decoder_std"):
        onnx.checker.check_model(os.path.join(export_dir, FILES[name]), full_check=True)
    sessions = {
        name: ort.InferenceSession(os.path.join(export_dir, FILES[name]), providers=["CPUExecutionProvider"])
        for name in ("encoder", "decoder", "encoder_std", "decoder_std")
    }
    medians = model._bottleneck.quantiles[:, 0, 1].detach().numpy().reshape(1, -1, 1, 1)
    report = []
    for label, x in _verification_inputs(model, shape).items():
        with torch.no_grad():
            y_ref = model._encoder(torch.from_numpy(x)).numpy()
            y_hat = np.rint(y_ref - medians) + medians
            x_ref = model._decoder(torch.from_numpy(y_hat.astype(np.float32))).numpy()
        for variant in ("", "_std"):
            y = sessions["encoder" + variant].run(None, {"image": x})[0]
            x_hat = sessions["decoder" + variant].run(None, {"latent_hat": y_hat.astype(np.float32)})[0]
            row = {
                "input": label,
                "variant": "custom-op" if not variant else "standard-ops",
                "latent_max_abs_diff": float(np.abs(y - y_ref).max()),
                "symbol_agreement": float(np.mean(np.rint(y - medians) == np.rint(y_ref - medians))),
                "image_max_abs_diff": float(np.abs(x_hat - x_ref).max()),
            }
            report.append(row)
            if (
                row["latent_max_abs_diff"] > LATENT_TOLERANCE
                or row["symbol_agreement"] < MIN_SYMBOL_AGREEMENT
                or row["image_max_abs_diff"] > IMAGE_TOLERANCE
            ):
                raise ExportError(
                    "verification failed on {input} ({variant}): latent diff {latent_max_abs_diff:.3g}, "
                    "symbols equal {symbol_agreement:.4%}, image diff {image_max_abs_diff:.3g}".format(**row)
                )
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


def _replaceable(path):
    """Only an empty directory or an earlier export may be replaced (never a user's other files)."""
    if not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    return not names or (MANIFEST in names and names <= set(FILES.values()) | {MANIFEST})


def export_model(model, info, out_dir, opset=DEFAULT_OPSET, shape=None):
    """Write a complete, verified export directory; it replaces `out_dir` only once everything passed."""
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise ExportError(f"opset {opset} not supported (choose {MIN_OPSET}..{max_opset})")
    if shape is not None:
        batch, height, width = shape
        d = model.downsampling
        if batch < 1 or height % d or width % d or height < d or width < d:
            raise ExportError(f"fixed shape {batch}x{height}x{width}: height and width must be positive multiples of {d}")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not _replaceable(out_dir):
        raise ExportError(f"{out_dir} exists and is not an earlier export: choose another output directory")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        encoder, decoder = transform_models(model, opset, shape)
        for key, proto in (("encoder", encoder), ("decoder", decoder)):
            onnx.save(proto, os.path.join(staging, FILES[key]))
            onnx.save(standard_ops_model(proto), os.path.join(staging, FILES[key + "_std"]))
        entropy_tables(model._bottleneck).save(os.path.join(staging, FILES["entropy"]))
        report = verify(model, staging, shape)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "N": model.N,
            "M": model.M,
            "latent_channels": model.N,
            "downsampling": model.downsampling,
            "opset": opset,
            "shape": None if shape is None else dict(zip(("batch", "height", "width"), shape)),
            "input": {"layout": "NCHW", "color": "RGB", "dtype": "float32", "range": [0.0, 1.0]},
            "gdn1_op": {"domain": DOMAIN, "op_type": GDN_OP, "plugin_version": PLUGIN_VERSION, "plugin_namespace": DOMAIN},
            "fingerprint": fingerprint(model),
            "files": {key: {"path": name, "sha256": file_sha256(os.path.join(staging, name))} for key, name in FILES.items()},
            "source": {"checkpoint": os.path.basename(info.path), "format": info.format, "serialization": info.serialization},
            "verification": report,
            "tools": _tool_versions(),
        }
        write_json_atomic(os.path.join(staging, MANIFEST), manifest)
        os.chmod(staging, default_mode(directory=True))
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
        return manifest
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
