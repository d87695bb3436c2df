"""`roi-trt bench latency`: the paper's latency protocol on any machine (FP32; encode = analysis + entropy
coding, decode = entropy decoding + synthesis, device copies included; mean, sample std and minimum).

Per image (resized to size x size with antialiasing), each method runs `warmup` untimed round trips,
then `repeats` timed encodes and `repeats` timed decodes; all runs of all images are pooled.
"""

import os
import time
from collections import OrderedDict

import numpy as np

from ..errors import RoiTrtError
from ..imageio import load_rgb, resize
from .results import read_rows, write_rows
from .stats import summarize, time_calls

# The CSV schema (documented in benchmarks/README.md); columns are only ever appended.
FIELDS = (
    "device", "method", "config", "backend", "stage", "n", "mean_s", "std_s", "min_s", "median_s", "p95_s",
    "bpp_mean", "bpp_std", "images", "size", "threads", "cpu", "cores", "gpu", "python", "numpy", "torch",
    "onnxruntime", "tensorrt", "pillow", "compressai", "roi_trt", "complete", "timestamp", "commit",
)


def environment(threads, size):
    """The run's settings that every row records (beside the provenance)."""
    return {"size": size, "threads": threads or ""}


def load_images(paths, size):
    """Resized (antialiased) uint8 images, as the paper prepares its inputs."""
    return [(os.path.basename(p), resize(load_rgb(p)[0], (size, size))) for p in paths]


def measure(methods, images, repeats, warmup=1, budget_s=None, progress=None):
    """-> (rows without environment columns, complete flag).

    A unit is one method on one image; when the budget is spent after a unit, the rest is skipped,
    so partial results pool whole units only.
    """
    deadline = time.monotonic() + budget_s if budget_s else None
    pooled = OrderedDict()
    complete = True
    units = [(rgb, m) for _, rgb in images for m in methods]
    for index, (rgb, m) in enumerate(units):
        if deadline is not None and index > 0 and time.monotonic() > deadline:
            complete = False
            break
        x = m.prepare(rgb)
        for _ in range(warmup):
            m.decode(m.encode(x)[1])
        payload, encoded = m.encode(x)
        entry = pooled.setdefault(m, {"encode": [], "decode": [], "bpp": [], "images": 0})
        entry["encode"] += time_calls(lambda: m.encode(x), repeats, warmup=0)
        entry["decode"] += time_calls(lambda: m.decode(encoded), repeats, warmup=0)
        entry["bpp"].append(len(payload) * 8.0 / (rgb.shape[0] * rgb.shape[1]))
        entry["images"] += 1
        if progress:
            progress(1)
    rows = []
    for m, entry in pooled.items():
        bpp = np.asarray(entry["bpp"])
        for stage in ("encode", "decode"):
            s = summarize(entry[stage])
            rows.append({
                "device": m.device, "method": m.method, "config": m.config, "backend": m.backend, "stage": stage,
                "n": s["n"], "mean_s": s["mean"], "std_s": s["std"], "min_s": s["min"], "median_s": s["median"],
                "p95_s": s["p95"], "bpp_mean": float(bpp.mean()), "bpp_std": float(bpp.std(ddof=1)) if bpp.size > 1 else "",
                "images": entry["images"],
            })
    return rows, complete


def write_csv(path, rows, env, complete, replace=False):
    write_rows(path, FIELDS, rows, dict(env, complete=int(complete)), replace)


def read_csv(path):
    """The latency rows of a results CSV: all of `bench latency`'s; of a self-test's (roi_trt.selftest), the
    end-to-end encode and decode rows, which follow the same protocol (its checks and engine-only timings
    have no counterpart in the paper's tables)."""
    rows = read_rows(path, "latency", ("device", "method", "config", "backend", "stage", "mean_s", "std_s", "min_s"),
                     ("mean_s", "std_s", "min_s", "median_s", "p95_s", "bpp_mean", "bpp_std"))
    rows = [r for r in rows if r.get("check") in (None, "", "end-to-end")]
    if not rows:
        raise RoiTrtError("{}: no encode or decode latency rows (a self-test that stopped before the GPU part "
                          "has none)".format(path))
    return rows


def build_methods(models, backends, codecs, qualities, threads=None, device=None, baselines=(), face_detector="mtcnn"):
    """-> (methods, notes). MODELS entries are what `store.resolve` takes; a method that cannot run here
    (a backend or dependency missing) is skipped with a note, the others still run. `baselines` (blur,
    maskout) add anonymize-then-compress methods per codec and quality, whose encode includes the face
    detection (`face_detector`) and the anonymization: their edge-side cost."""
    from ..backends import open_backend
    from ..codec import Codec
    from ..store import resolve
    from .methods import PaperTorchMethod, PillowCodecMethod, RoiCodecMethod

    methods, notes = [], []
    for entry in models:
        model = resolve(entry)
        for backend in backends:
            try:
                if backend == "torch":
                    methods.append(PaperTorchMethod(model, device=device or "cpu", threads=threads))
                else:
                    impl = open_backend(model, backend, threads=threads, device=device)
                    methods.append(RoiCodecMethod(Codec(impl, model.entropy_tables())))
            except RoiTrtError as exc:
                notes.append("{} / {}: skipped ({})".format(entry, backend, exc))
    for codec in codecs:
        for quality in qualities:
            try:
                methods.append(PillowCodecMethod(codec, quality))
            except RuntimeError as exc:
                notes.append("{}: skipped ({})".format(codec, exc))
                break
    if baselines:
        from .anonymize import AnonymizeThenCompress
        from .detectors import open_detector

        try:
            detector = open_detector(face_detector, "face", device=device, threads=threads)
        except RoiTrtError as exc:
            notes.append("baselines {}: skipped ({})".format(",".join(baselines), exc))
            return methods, notes
        for mode in baselines:
            for plain in [m for m in methods if isinstance(m, PillowCodecMethod)]:
                methods.append(AnonymizeThenCompress(mode, PillowCodecMethod(plain.method, plain.quality), detector))
    return methods, notes
