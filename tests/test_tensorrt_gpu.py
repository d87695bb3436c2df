"""TensorRT engines built and run on this machine's GPU: both parts in both GDN1 modes, agreeing with ONNX
Runtime on CPU, a full codec round trip, and sidecar refusals of real engines. Skipped, with the reason,
without a CUDA device (detected for real), without tensorrt, or (plugin mode) without the plugin library.
"""

import json
import os
import shutil

import numpy as np
import pytest

from roi_trt import artifacts, cuda
from roi_trt.backends.onnxruntime import OnnxRuntimeBackend
from roi_trt.backends.tensorrt import import_tensorrt
from roi_trt.backends.tensorrt import loader, plugin
from roi_trt.backends.tensorrt.runner import TensorRTBackend
from roi_trt.build import engine, targets
from roi_trt.build.targets import Profile
from roi_trt.codec import Codec
from roi_trt.errors import BackendError, BuildError, EngineError, PluginError, RoiTrtError
from roi_trt.imageio import pad_to_multiple, to_nchw
from roi_trt.optional import version_tuple
from roi_trt.store import resolve

pytestmark = pytest.mark.gpu

DETECTION = cuda.detect()
if not DETECTION.devices:
    pytest.skip(DETECTION.reason, allow_module_level=True)
try:  # the installed tensorrt, or the one $ROI_TRT_TENSORRT_HOME names
    trt = import_tensorrt("the GPU tests")
except RoiTrtError as exc:
    pytest.skip(str(exc), allow_module_level=True)

MODES = ("inline", "plugin")


class EngineModel(object):
    """The resolved export, with the engines built here standing in for the model store's lookup."""

    def __init__(self, export_dir, engines):
        self._model, self._engines = resolve(export_dir), engines

    def __getattr__(self, name):
        return getattr(self._model, name)

    def engine_path(self, part):
        return self._engines[part]


def profile(part, model):
    if part == "encoder":
        return Profile((1, 3, 16, 16), (1, 3, 256, 256), (2, 3, 512, 512))
    n, d = model.N, model.downsampling
    return Profile((1, n, 1, 1), (1, n, 256 // d, 256 // d), (2, n, 512 // d, 512 // d))


@pytest.fixture(scope="module")
def engines(export_dir, tmp_path_factory):
    """mode -> {part: engine path}, built here (a mode whose plugin library is missing: its PluginError)."""
    try:
        target, _ = targets.resolve("auto", DETECTION.devices[0].compute_capability)
        targets.check_tensorrt(target, version_tuple(trt.__version__))
    except BuildError as exc:
        pytest.skip("no build target for this GPU and TensorRT: {}".format(exc))
    model = resolve(export_dir)
    out = str(tmp_path_factory.mktemp("engines"))
    built = {}
    for mode in MODES:
        try:
            built[mode] = {part: engine.build_engine(
                os.path.join(export_dir, part + ".onnx"), part, model.N, model.M, model.fingerprint, target="auto",
                shapes=profile(part, model), gdn_mode=mode, out_dir=os.path.join(out, mode),
                timing_cache=os.path.join(out, "timing.cache")) for part in ("encoder", "decoder")}
        except PluginError as exc:
            built[mode] = exc
    return built


def engine_model(export_dir, engines, mode):
    if isinstance(engines[mode], PluginError):
        pytest.skip("GDN1 plugin library unavailable: {}".format(engines[mode]))
    return EngineModel(export_dir, engines[mode])


@pytest.fixture(scope="module")
def image(photo):
    return pad_to_multiple(to_nchw(photo[:240, :368]), 16)  # 240x368: not square, no multiple of the opt shape


@pytest.fixture(scope="module")
def reference(export_dir, image):
    with OnnxRuntimeBackend(resolve(export_dir), device="cpu") as backend:
        latent = backend.analysis(image)
        return latent, backend.synthesis(np.rint(latent))


@pytest.mark.parametrize("mode", MODES)
def test_sidecars_record_the_build(export_dir, engines, mode):
    model = engine_model(export_dir, engines, mode)
    for part in ("encoder", "decoder"):
        sidecar = artifacts.read_sidecar(model.engine_path(part))
        assert sidecar["gdn"] == mode and sidecar["part"] == part and sidecar["fingerprint"] == model.fingerprint
        assert "TF32" not in sidecar["builder_flags"]
        assert sidecar["tensorrt_version"] == trt.__version__
        assert sidecar["gpu"]["compute_capability"] == "{}.{}".format(*DETECTION.devices[0].compute_capability)
        assert (sidecar["plugin_sha256"] is None) == (mode == "inline")
        assert 0 < sidecar["activation_bytes"] < DETECTION.devices[0].total_memory  # TensorRT's own figure


@pytest.mark.parametrize("mode", MODES)
def test_engines_agree_with_onnxruntime(export_dir, engines, mode, image, reference):
    model = engine_model(export_dir, engines, mode)
    medians = model.entropy_tables().medians[None, :, None, None]
    with TensorRTBackend(model) as backend:
        assert backend.device == "cuda:0"
        latent = backend.analysis(image)
        assert latent.shape == reference[0].shape and latent.dtype == np.float32
        assert np.abs(latent - reference[0]).max() <= 1e-3
        same = np.rint(latent - medians) == np.rint(reference[0] - medians)
        assert same.mean() >= 0.9999
        decoded = backend.synthesis(np.rint(reference[0]))
        assert decoded.shape == image.shape and np.abs(decoded - reference[1]).max() <= 1 / 255.0


def test_plugin_and_inline_engines_agree(export_dir, engines, image):
    with TensorRTBackend(engine_model(export_dir, engines, "inline")) as inline, \
            TensorRTBackend(engine_model(export_dir, engines, "plugin")) as fused:
        assert np.abs(inline.analysis(image) - fused.analysis(image)).max() <= 1e-3


@pytest.mark.parametrize("library", cuda.LIBRARIES)
def test_every_cuda_library_runs_the_engines(export_dir, engines, image, reference, library, monkeypatch):
    monkeypatch.setenv(cuda.ENV_VAR, library)
    try:
        backend = TensorRTBackend(engine_model(export_dir, engines, "inline"), parts=("encoder",))
    except BackendError as exc:
        pytest.skip("{} unavailable: {}".format(library, exc))
    with backend:
        assert backend._cuda.library == library
        for _ in range(2):  # buffers reused
            assert np.abs(backend.analysis(image) - reference[0]).max() <= 1e-3
        batch = np.concatenate([image, image[:, :, ::-1]])
        assert backend.analysis(batch).shape[0] == 2  # larger input: buffers grow


def test_codec_round_trip_matches_onnxruntime(export_dir, engines, photo):
    model = engine_model(export_dir, engines, "inline")
    rgb = photo[:300, :400]
    with Codec(TensorRTBackend(model), model.entropy_tables()) as gpu, \
            Codec(OnnxRuntimeBackend(resolve(export_dir), device="cpu"), model.entropy_tables()) as cpu:
        stream, _ = gpu.encode(rgb)
        a, _ = gpu.decode(stream)
        b, _ = cpu.decode(stream)
    assert a.shape == rgb.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_inputs_outside_the_profile_are_refused_before_running(export_dir, engines):
    model = engine_model(export_dir, engines, "inline")
    with TensorRTBackend(model, parts=("encoder",)) as backend:
        assert backend.profile("encoder") == profile("encoder", model)
        with pytest.raises(BackendError, match=r"encoder input 1x3x528x528 is outside the engine's profile "
                                               r"\(1x3x16x16 to 2x3x512x512\)"):
            backend.analysis(np.zeros((1, 3, 528, 528), np.float32))
        assert backend.analysis(np.zeros((1, 3, 16, 16), np.float32)).shape[2:] == (1, 1)


def copy_engine(path, tmp_path):
    out = str(tmp_path / os.path.basename(path))
    shutil.copy(path, out)
    shutil.copy(artifacts.sidecar_path(path), artifacts.sidecar_path(out))
    return out


def edit_sidecar(path, **changes):
    sidecar = artifacts.read_sidecar(path)
    sidecar.update(changes)
    with open(artifacts.sidecar_path(path), "w") as f:
        json.dump(sidecar, f)


@pytest.mark.parametrize("change, message", [
    ("engine", "the file changed after the build"),
    ("tensorrt", "built with TensorRT 1.0.0, this is "),
    ("gpu", "built for compute capability 1.0 (old GPU), this GPU is "),
])
def test_real_engines_are_refused_when_anything_differs(export_dir, engines, tmp_path, change, message):
    model = engine_model(export_dir, engines, "inline")
    path = copy_engine(model.engine_path("decoder"), tmp_path)
    if change == "engine":
        with open(path, "ab") as f:
            f.write(b"\0")
    elif change == "tensorrt":
        edit_sidecar(path, tensorrt_version="1.0.0")
    else:
        edit_sidecar(path, gpu={"name": "old GPU", "compute_capability": "1.0"})
    expect = {"fingerprint": model.fingerprint, "N": model.N, "M": model.M, "part": "decoder"}
    with pytest.raises(EngineError) as info:
        loader.load_engine(path, expect)
    assert message in str(info.value)
    with pytest.raises(EngineError, match="fingerprint is"):
        loader.load_engine(model.engine_path("decoder"), dict(expect, fingerprint="0" * 64))
    assert loader.load_engine(model.engine_path("decoder"), expect).engine is not None


def test_a_plugin_engine_is_refused_with_another_plugin_library(export_dir, engines, tmp_path):
    model = engine_model(export_dir, engines, "plugin")
    other = str(tmp_path / plugin.LIBRARY_NAME)
    shutil.copy(plugin.locate(), other)
    with open(other, "ab") as f:
        f.write(b"\0")
    expect = {"fingerprint": model.fingerprint, "N": model.N, "M": model.M, "part": "encoder"}
    with pytest.raises(EngineError, match="built with GDN1 plugin library"):
        loader.load_engine(model.engine_path("encoder"), expect, plugin_path=other)


def test_the_selftest_passes_on_this_gpu(tmp_path):
    """`roi-trt doctor --selftest --report DIR` end to end: every engine set built, checked and timed."""
    from roi_trt import selftest
    from roi_trt.bench.latency import read_csv

    report = str(tmp_path / "report")
    assert selftest.run("demo", report, repeats=3, log=lambda line: None), open(os.path.join(report, selftest.SUMMARY)).read()
    rows = read_csv(os.path.join(report, selftest.CSV))
    assert {r["backend"] for r in rows} >= {"tensorrt", "tensorrt-polyphase"}
    assert {r["stage"] for r in rows} == {"encode", "decode"} and all(r["gpu_driver"] for r in rows)


@pytest.mark.skipif(len(DETECTION.devices) < 2, reason="one CUDA device: --device N needs a second")
def test_build_and_run_on_the_device_named(export_dir, tmp_path):
    model = resolve(export_dir)
    path = engine.build_engine(os.path.join(export_dir, "decoder.onnx"), "decoder", model.N, model.M, model.fingerprint,
                               shapes=profile("decoder", model), out_dir=str(tmp_path), device=1)
    assert artifacts.read_sidecar(path)["gpu"]["name"] == DETECTION.devices[1].name
    with TensorRTBackend(EngineModel(export_dir, {"decoder": path}), parts=("decoder",), device="cuda:1") as backend:
        assert backend.synthesis(np.zeros((1, model.N, 4, 4), np.float32)).shape == (1, 3, 64, 64)
