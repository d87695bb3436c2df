"""`roi-trt doctor --selftest`: what proves a GPU machine, in one command whose report users paste into an issue.

For one model (the demo by default) it builds every engine roi-trt can make - both parts x both GDN1 modes
(inline layers, the fused plugin) x both decoder forms (deconvolution layers, phases) - in FP32 with TF32
off, and checks each against ONNX Runtime on the CPU (latent and image max |difference|, share of equal
symbols); it times the engines alone by CUDA events at 512 x 512 and 1080p (batch 1 and 4), and encode and
decode end to end per image as the paper's protocol does (host copies and entropy coding included, the
latency CSV's rows, so `roi-trt bench report selftest.csv --compare paper` sets them beside Tab. II/III);
and it runs the GDN1 plugin alone against a float64 host reference.

Everything that needs no GPU runs first (the model, ONNX Runtime's reference results); without a CUDA
device or TensorRT it stops there with one line saying why. The report directory gets `selftest.csv` (the
latency CSV's columns, then the checks' own, every row with the GPU, driver, CUDA and TensorRT versions)
and `selftest.txt` (the summary printed).
"""

import os
import platform
import shutil
import tempfile
from collections import OrderedDict

import numpy as np

from . import __version__, cuda
from .artifacts import GDN_MODES, copy_model_files, sidecar_path
from .bench.latency import FIELDS as LATENCY_FIELDS
from .build.targets import FRAME_1080P
from .errors import RoiTrtError
from .spec import DECONV_FORMS, GDN1_DOMAIN, MIN_SYMBOL_AGREEMENT, PARTS, TENSORRT_DECONV

# TensorRT against ONNX Runtime on the CPU: latent max |difference| and decoded image max |difference| (pixels
# in [0, 1]; the goal is 1e-3, one 8-bit step the bound), beside spec.MIN_SYMBOL_AGREEMENT
LATENT_TOLERANCE, IMAGE_TOLERANCE = 1e-3, 1.0 / 255
KERNEL_TOLERANCE = 1e-4  # the GDN1 plugin against float64, relative: a float32 sum over 128 channels and a division
IMAGES = OrderedDict((("512x512", (512, 512)), ("1080p", FRAME_1080P)))
BATCHES = (1, 4)
FIELDS = LATENCY_FIELDS + (
    "check", "engines", "gdn", "deconv", "shape", "latent_max_abs_diff", "symbol_agreement", "image_max_abs_diff",
    "kernel_max_rel_diff", "activation_bytes", "passed", "error", "gpu_driver", "cuda_runtime",
)
CSV, SUMMARY = "selftest.csv", "selftest.txt"


def engine_sets():
    """(gdn mode, decoder form) of every engine set: TensorRT's default form first."""
    forms = (TENSORRT_DECONV,) + tuple(f for f in DECONV_FORMS if f != TENSORRT_DECONV)
    return [(gdn, deconv) for gdn in GDN_MODES for deconv in forms]


class Report(object):
    """Rows and summary lines, written to `directory` (when given) as they come, so a run that dies midway
    still leaves what it measured."""

    def __init__(self, directory, env, log):
        self.directory, self.env, self.log = directory, env, log
        self.rows, self.lines, self.ok = [], [], True
        if directory:
            os.makedirs(directory, exist_ok=True)

    def say(self, line):
        self.lines.append(line)
        self.log(line)
        self.write()

    def add(self, row, passed=True):
        self.rows.append(dict(row, passed=int(passed)))
        self.ok = self.ok and passed
        self.write()

    def write(self):
        if not self.directory:
            return
        from .bench.results import write_rows
        from .fileio import write_bytes_atomic

        write_rows(os.path.join(self.directory, CSV), FIELDS, self.rows, self.env, replace=True)
        write_bytes_atomic(os.path.join(self.directory, SUMMARY), "\n".join(self.lines + [""]).encode("utf-8"))


def environment(detection, trt_version, device_index):
    """What every row records besides the provenance (roi_trt.bench.provenance): the latency CSV's settings,
    the GPU tested, its driver and CUDA runtime versions and the TensorRT that ran."""
    from .bench.latency import environment as latency_environment

    env = dict(latency_environment(threads=None, size=512), complete=1)
    gpu = detection.devices[device_index] if 0 <= device_index < len(detection.devices) else None
    env.update(gpu=gpu.name if gpu else "", tensorrt=trt_version or "")
    api = detection.api
    env["gpu_driver"] = cuda.version_text(api.driver_version()) if api else ""
    env["cuda_runtime"] = cuda.version_text(api.runtime_version()) if api else ""
    return env


def references(model, photo):
    """ONNX Runtime on the CPU: (frame, latent, dequantized latent, decoded image) of the photo at 512 x 512."""
    from .codec import open_codec

    with open_codec(model, backend="onnxruntime", device="cpu") as reference:
        frame = reference.prepare(photo, IMAGES["512x512"])
        latent = reference.analyze(frame)[0]
        y_hat = np.rint(latent)[None].astype(np.float32)
        image = reference.synthesize(y_hat)[0]
        return frame, latent, y_hat, image, reference.tables


def parity(codec, frame, latent_ref, y_hat, image_ref, tables):
    """-> (row, passed) of one TensorRT codec against ONNX Runtime's results."""
    from .entropy import quantize

    latent = codec.analyze(frame)[0]
    image = codec.synthesize(y_hat)[0]
    row = {"latent_max_abs_diff": float(np.abs(latent - latent_ref).max()),
           "symbol_agreement": float(np.mean(quantize(latent, tables) == quantize(latent_ref, tables))),
           "image_max_abs_diff": float(np.abs(image - image_ref).max())}
    passed = (row["latent_max_abs_diff"] <= LATENT_TOLERANCE and row["symbol_agreement"] >= MIN_SYMBOL_AGREEMENT
              and row["image_max_abs_diff"] <= IMAGE_TOLERANCE)
    return row, passed


def _build_set(model, trt, gdn, deconv, root, device, log, encoders):
    """The engine directory of one set: the encoder of its GDN mode (built once, shared), its decoder."""
    from .build.engine import build_engine

    out = os.path.join(root, "{}-{}".format(gdn, deconv))
    os.makedirs(out, exist_ok=True)
    encoder = encoders.get(gdn)
    if encoder is None:
        encoder = encoders[gdn] = build_engine(model.onnx_file("encoder", "tensorrt", trt.__version__), "encoder",
                                               model.N, model.M, model.fingerprint, gdn_mode=gdn, out_dir=out,
                                               device=device, log=log)
    else:
        for path in (encoder, sidecar_path(encoder)):
            shutil.copyfile(path, os.path.join(out, os.path.basename(path)))
    build_engine(model.onnx_file("decoder", "tensorrt", trt.__version__), "decoder", model.N, model.M,
                 model.fingerprint, gdn_mode=gdn, out_dir=out, device=device, log=log, deconv=deconv)
    copy_model_files(model.export_dir(), out)
    return out


def _summary_row(samples):
    from .bench.stats import summarize

    s = summarize(samples)
    return {"n": s["n"], "mean_s": s["mean"], "std_s": s["std"], "min_s": s["min"], "median_s": s["median"],
            "p95_s": s["p95"]}


def engine_timings(codec, photo, repeats):
    """Rows of the engines alone (CUDA events) per part, image size and batch within their profiles."""
    backend, rows, skipped = codec.backend, [], []
    for size in IMAGES.values():
        frame = codec.prepare(photo, size)
        for batch in BATCHES:
            x = np.repeat(frame.x, batch, axis=0)
            latent = None
            for part in PARTS:
                array = x if part == "encoder" else np.rint(latent)
                shape = "x".join(str(v) for v in array.shape)
                low, _, high = backend.profile(part)
                if any(s < lo or s > hi for s, lo, hi in zip(array.shape, low, high)):
                    skipped.append("{} {} (outside the engine's profile)".format(part, shape))
                    break
                seconds = backend.time_engine(part, array, repeats)
                rows.append(dict(_summary_row(seconds), stage="analysis" if part == "encoder" else "synthesis",
                                 shape=shape, images=batch))
                if part == "encoder":
                    latent = backend.analysis(array)
    return rows, skipped


def end_to_end(codec, photos, repeats):
    """The paper's protocol on the bundled photos at 512 x 512: encode (analysis + entropy coding) and decode,
    host copies included, as latency CSV rows."""
    from .bench.latency import load_images, measure
    from .bench.methods import RoiCodecMethod

    rows, _ = measure([RoiCodecMethod(codec)], load_images(photos, 512), repeats)
    return rows


def gdn1_reference(x, gamma, beta, inverse):
    """GDN1 in float64: y_i = x_i / (beta_i + sum_j gamma_ij |x_j|), or x_i * (...) when inverse."""
    x = x.astype(np.float64)
    norm = np.einsum("ij,bjhw->bihw", gamma.astype(np.float64), np.abs(x)) + beta.astype(np.float64)[None, :, None, None]
    return x * norm if inverse else x / norm


def gdn1_layer_model(channels, inverse, seed=0):
    """A one-node ONNX model, GDN1 in plugin form, with positive gamma and beta as a trained layer has:
    -> (serialized model, gamma, beta)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .onnx_rewrite import gdn1_node, plugin_model

    rng = np.random.default_rng(seed)
    gamma = (rng.random((channels, channels)) * 0.1).astype(np.float32)
    beta = (1.0 + rng.random(channels)).astype(np.float32)
    graph = helper.make_graph(
        [gdn1_node("x", "gamma", "beta", "y", inverse)], "gdn1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", channels, "height", "width"])],
        initializer=[numpy_helper.from_array(gamma, "gamma"), numpy_helper.from_array(beta, "beta")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(GDN1_DOMAIN, 1)])
    onnx.checker.check_model(model)
    return plugin_model(model).SerializeToString(), gamma, beta


def kernel_check(trt, device, channels=128, shape=(2, 64, 96)):
    """The GDN1 plugin alone (forward and inverse) against `gdn1_reference` -> (max relative difference, passed)."""
    from .backends.tensorrt.plugin import load_plugin
    from .backends.tensorrt.runner import run_engine
    from .build.engine import compile_network
    from .build.targets import Profile
    from .optional import version_tuple

    load_plugin()
    version = version_tuple(trt.__version__)
    batch, height, width = shape
    x = (np.random.default_rng(1).standard_normal((batch, channels, height, width)) * 4).astype(np.float32)
    worst = 0.0
    for inverse in (0, 1):
        data, gamma, beta = gdn1_layer_model(channels, inverse)
        profile = Profile(*([x.shape] * 3))
        compiled = compile_network(trt, version, data, "GDN1 inverse={}".format(inverse), profile, 256 << 20,
                                   plugin_layers=1)
        y = run_engine(trt, version, compiled.serialized, x, device)
        expected = gdn1_reference(x, gamma, beta, inverse)
        worst = max(worst, float(np.max(np.abs(y - expected) / np.maximum(np.abs(expected), 1e-6))))
    return worst, worst <= KERNEL_TOLERANCE


def run(model="demo", report_dir=None, device=0, repeats=10, log=print):
    """The self-test (see the module docstring) -> True when every check passed."""
    from .backends.tensorrt import import_tensorrt
    from .codec import open_codec
    from .imageio import load_rgb
    from .samples import sample_photos
    from .store import resolve

    detection = cuda.detect()
    try:
        trt = import_tensorrt("roi-trt doctor --selftest")
        trt_version, missing = trt.__version__, None
    except RoiTrtError as exc:
        trt, trt_version, missing = None, None, str(exc)
    report = Report(report_dir, environment(detection, trt_version, device), log)
    env = report.env
    report.say("roi-trt {} selftest (Python {}, {}): GPU {}, driver {}, CUDA runtime {}, TensorRT {}".format(
        __version__, platform.python_version(), platform.machine(), env["gpu"] or "none", env["gpu_driver"] or "none",
        env["cuda_runtime"] or "none", trt_version or "none"))
    resolved = resolve(model)
    photos = sample_photos()
    photo = load_rgb(photos[0])[0]
    frame, latent_ref, y_hat, image_ref, tables = references(resolved, photo)
    report.say("reference: ONNX Runtime on the CPU, {} ({}, {}) on {} at 512x512".format(
        resolved.label, resolved.N, resolved.M, os.path.basename(photos[0])))
    base = {"method": "roi-codec", "config": "{}-{}".format(resolved.N, resolved.M), "size": 512}
    reasons = [detection.reason if not detection.devices else None, missing]
    if detection.devices and not 0 <= device < len(detection.devices):
        reasons[0] = "no CUDA device {} (this machine has {})".format(device, len(detection.devices))
    stop = "; ".join(r for r in reasons if r) or None
    if stop is not None:
        report.add(dict(base, check="stopped", error=stop), passed=False)
        report.say("selftest stopped before the GPU part: {}".format(stop))
        return False
    root = tempfile.mkdtemp(prefix="roi-trt-selftest-") if not report_dir else os.path.join(report_dir, "engines")
    encoders = {}
    try:
        for gdn, deconv in engine_sets():
            name = "{} {}".format(gdn, deconv)
            common = dict(base, device="cuda:{}".format(device), gdn=gdn, deconv=deconv)
            try:
                out = _build_set(resolved, trt, gdn, deconv, root, device, log, encoders)
            except RoiTrtError as exc:
                report.add(dict(common, check="build", error=str(exc)), passed=False)
                report.say("  {:<24} FAILED to build: {}".format(name, exc))
                continue
            try:
                with open_codec(out, backend="tensorrt", device="cuda:{}".format(device)) as codec:
                    sidecars = [codec.backend.sidecar(part) for part in PARTS]
                    common.update(backend=codec.backend.label, engines=" ".join(
                        "{}:{}".format(s["engine"], s["engine_sha256"][:12]) for s in sidecars),
                        activation_bytes=sum(s.get("activation_bytes", 0) for s in sidecars))
                    values, passed = parity(codec, frame, latent_ref, y_hat, image_ref, tables)
                    report.add(dict(common, check="parity", **values), passed)
                    report.say("  {:<24} {}  latent max|diff| {:.2e} (<= {:g})  symbols equal {:.4%} (>= {:.2%})  "
                               "image max|diff| {:.2e} (<= 1/255)".format(
                                   name, "ok    " if passed else "FAILED", values["latent_max_abs_diff"],
                                   LATENT_TOLERANCE, values["symbol_agreement"], MIN_SYMBOL_AGREEMENT,
                                   values["image_max_abs_diff"]))
                    rows, skipped = engine_timings(codec, photo, repeats)
                    for row in rows:
                        report.add(dict(common, check="engine", **row))
                        report.say("  {:<24} engine alone {:<9} {:<18} {:8.3f} ms (min {:.3f})".format(
                            name, row["stage"], row["shape"], row["mean_s"] * 1e3, row["min_s"] * 1e3))
                    for what in skipped:
                        report.say("  {:<24} not timed: {}".format(name, what))
                    for row in end_to_end(codec, photos, repeats):
                        report.add(dict(common, check="end-to-end", **row))
                        report.say("  {:<24} {} per image {:8.2f} ms (min {:.2f}), {:.3f} bpp".format(
                            name, row["stage"], row["mean_s"] * 1e3, row["min_s"] * 1e3, row["bpp_mean"]))
            except RoiTrtError as exc:
                report.add(dict(common, check="run", error=str(exc)), passed=False)
                report.say("  {:<24} FAILED: {}".format(name, exc))
        try:
            worst, passed = kernel_check(trt, device)
            report.add(dict(base, device="cuda:{}".format(device), check="kernel", gdn="plugin", kernel_max_rel_diff=worst),
                       passed)
            report.say("  GDN1 plugin alone       {}  max relative difference to float64 {:.2e} (<= {:g})".format(
                "ok    " if passed else "FAILED", worst, KERNEL_TOLERANCE))
        except RoiTrtError as exc:
            report.add(dict(base, device="cuda:{}".format(device), check="kernel", gdn="plugin", error=str(exc)),
                       passed=False)
            report.say("  GDN1 plugin alone       FAILED: {}".format(exc))
    finally:
        if not report_dir:
            shutil.rmtree(root, ignore_errors=True)
    report.say("selftest {}".format("passed" if report.ok else "FAILED"))
    return report.ok
