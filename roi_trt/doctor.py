"""`roi-trt doctor`: what this machine can run, per target, and a GPU self-test users can paste into an issue.

Nothing here creates a TensorRT Builder or Runtime unless a CUDA device was found first.
"""

import importlib
import os
import platform
import tempfile

import numpy as np

from . import __version__, cuda
from .backends.tensorrt import api
from .build import targets
from .errors import RoiTrtError
from .spec import PARTS

# latent max |diff|, share of identical symbols, decoded image max |diff| (issue: TensorRT vs ONNX Runtime)
LATENT_TOLERANCE, MIN_SYMBOL_AGREEMENT, IMAGE_TOLERANCE = 1e-3, 0.9999, 1.0 / 255


def _module(name):
    """(version or 'installed', None) or (None, why not)."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # missing, or broken (e.g. a library it links is absent): both are reported
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return getattr(module, "__version__", "installed"), None


def _line(label, value):
    return "{:<23}{}".format(label + ":", value)


def report():
    """-> lines: installed pieces, CUDA devices, the plugin library, and what each target still needs."""
    lines = [_line("roi-trt", "{} (Python {}, {})".format(__version__, platform.python_version(), platform.machine()))]
    found = {}
    for name, label in (("roi_trt._rans", "rANS core"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx (rewrites)"),
                        ("tensorrt", "tensorrt"), ("pycuda.driver", "pycuda"), ("cuda.bindings.runtime", "cuda-bindings")):
        version, why = _module(name)
        found[name] = version
        lines.append(_line(label, version if version else "unavailable ({})".format(why)))
    if found["onnxruntime"]:
        import onnxruntime

        lines.append(_line("onnxruntime providers", ", ".join(onnxruntime.get_available_providers())))
    detection = cuda.detect()
    for device in detection.devices:
        lines.append(_line("CUDA device {}".format(device.index), "{}, compute capability {}, {:.1f} GiB".format(
            device.name, cuda.cc_text(device.compute_capability), device.total_memory / 2.0 ** 30)))
    if not detection.devices:
        lines.append(_line("CUDA devices", detection.reason))
    from .artifacts import file_sha256
    from .backends.tensorrt import plugin

    try:
        library = plugin.locate()
        lines.append(_line("GDN1 plugin", "{} (sha256 {})".format(library, file_sha256(library)[:16])))
    except RoiTrtError as exc:
        library = None
        lines.append(_line("GDN1 plugin", str(exc)))
    version = api.version_tuple(found["tensorrt"]) if found["tensorrt"] else None
    for target in targets.TARGETS.values():
        missing = []
        if not any(d.compute_capability == target.compute_capability for d in detection.devices):
            missing.append("a GPU of compute capability {}".format(cuda.cc_text(target.compute_capability)))
        if version is None or version[0] not in target.tensorrt_majors:
            missing.append("TensorRT {}".format("/".join("{}.x".format(m) for m in target.tensorrt_majors)))
        if not (found["pycuda.driver"] or found["cuda.bindings.runtime"] or cuda.cudart_paths()):
            missing.append("pycuda, cuda-bindings or libcudart")
        needs = "ready" if not missing else "needs " + ", ".join(missing)
        if library is None:
            needs += " (and the GDN1 plugin library for --gdn plugin)"
        lines.append(_line("target " + target.name, needs))
    return lines


def _compare(reference, engine, image):
    """-> (row of measured differences, passed) for one TensorRT codec against ONNX Runtime on the CPU."""
    from .entropy import quantize

    frame = reference.prepare(image)
    latent_ref, latent = reference.analyze(frame)[0], engine.analyze(frame)[0]
    agreement = float(np.mean(quantize(latent, reference.tables) == quantize(latent_ref, reference.tables)))
    y_hat = np.rint(latent_ref)[None].astype(np.float32)
    image_diff = float(np.abs(engine.synthesize(y_hat)[0] - reference.synthesize(y_hat)[0]).max())
    latent_diff = float(np.abs(latent - latent_ref).max())
    passed = latent_diff <= LATENT_TOLERANCE and agreement >= MIN_SYMBOL_AGREEMENT and image_diff <= IMAGE_TOLERANCE
    return (latent_diff, agreement, image_diff), passed


def selftest(model="demo"):
    """Build both parts in both GDN modes on this GPU, run them against ONNX Runtime on the CPU -> (lines, ok)."""
    detection = cuda.detect()
    if not detection.devices:
        return ["selftest: " + detection.reason], False
    from .artifacts import copy_model_files
    from .build.engine import build_engine
    from .codec import open_codec
    from .imageio import load_rgb, resize
    from .optional import require
    from .samples import sample_photos
    from .store import resolve

    trt = require("tensorrt", "roi-trt doctor --selftest")
    resolved = resolve(model)
    image = resize(load_rgb(sample_photos()[0])[0], (512, 512))
    lines, ok = ["selftest on {} with TensorRT {} ({}):".format(detection.devices[0].name, trt.__version__, model)], True
    reference = open_codec(resolved, backend="onnxruntime", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        for gdn in ("inline", "plugin"):
            out = os.path.join(tmp, gdn)
            try:
                for part in PARTS:
                    build_engine(resolved.onnx_file(part, "tensorrt", trt.__version__), part, resolved.N, resolved.M,
                                 resolved.fingerprint, gdn_mode=gdn, out_dir=out)
                copy_model_files(resolved.export_dir(), out)
                with open_codec(out, backend="tensorrt") as engine:
                    (latent_diff, agreement, image_diff), passed = _compare(reference, engine, image)
            except RoiTrtError as exc:
                lines.append("  --gdn {:<7} FAILED: {}".format(gdn, exc))
                ok = False
                continue
            ok = ok and passed
            lines.append("  --gdn {:<7} {}  latent max|diff| {:.2e} (<= {:g})  symbols equal {:.4%} (>= {:.2%})  "
                         "image max|diff| {:.2e} (<= 1/255)".format(gdn, "ok    " if passed else "FAILED", latent_diff,
                                                                     LATENT_TOLERANCE, agreement, MIN_SYMBOL_AGREEMENT,
                                                                     image_diff))
    reference.close()
    return lines, ok
