"""The TensorRT builder's GPU-free core: version decisions, targets, the ONNX each build mode parses, engine
sidecars and their refusals (before TensorRT is imported), and CUDA device detection through the real
CUDA runtime. Builds and runs on a GPU are in test_tensorrt_gpu.py; NVIDIA's parser in test_tensorrt_rtx.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from roi_trt import artifacts, cuda
from roi_trt.artifacts import read_manifest
from roi_trt.backends.tensorrt import api as trt_api
from roi_trt.backends.tensorrt import loader
from roi_trt.backends.tensorrt.runner import engine_label
from roi_trt.build import engine, targets
from roi_trt.build.targets import Profile
from roi_trt.errors import BackendError, BuildError, EngineError, RoiTrtError
from roi_trt.optional import version_tuple
from roi_trt.onnx_rewrite import is_gdn1
from roi_trt.spec import GDN1_OP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- version decisions -----------------------------------------------------------------------------

EXPLICIT = ("EXPLICIT_BATCH",)
OVERRIDE = ("ENABLE_PLUGIN_OVERRIDE",)
# version: network flags, workspace setting, engine I/O, strip GDN1 function bodies, parser flags, version-compatible
VERSIONS = [
    ((8, 0, 1), EXPLICIT, "max_workspace_size", "bindings", True, (), False),
    ((8, 2, 1), EXPLICIT, "max_workspace_size", "bindings", True, (), False),
    ((8, 5, 3), EXPLICIT, "memory_pool_limit", "tensors", True, (), False),
    ((8, 6, 1), EXPLICIT, "memory_pool_limit", "tensors", True, (), True),
    ((9, 2, 0), EXPLICIT, "memory_pool_limit", "tensors", True, (), True),
    ((10, 0, 1), (), "memory_pool_limit", "tensors", True, (), True),
    ((10, 6, 0), (), "memory_pool_limit", "tensors", True, (), True),
    ((10, 7, 0), (), "memory_pool_limit", "tensors", False, (), True),
    ((10, 15, 1), (), "memory_pool_limit", "tensors", False, OVERRIDE, True),
    ((11, 1, 0), (), "memory_pool_limit", "tensors", False, OVERRIDE, True),
]


@pytest.mark.parametrize("version, network, workspace, io, strip, parser_flags, compatible", VERSIONS)
def test_version_decisions(version, network, workspace, io, strip, parser_flags, compatible):
    assert trt_api.network_flag_names(version) == network
    assert trt_api.workspace_setting(version) == workspace
    assert trt_api.cleared_flag_names(version) == ("TF32",)  # FP32 as in the paper, 11.x included
    assert trt_api.io_style(version) == io
    dispatch = trt_api.plugin_dispatch(version)
    assert (dispatch.strip_functions, dispatch.parser_flags) == (strip, parser_flags)
    assert trt_api.version_compatible_available(version) == compatible


def test_plugin_dispatch_orders_name_what_the_parser_tries_first():
    assert trt_api.plugin_dispatch((8, 2, 1)).order == "plugin registry by op type"
    assert trt_api.plugin_dispatch((10, 6)).order.startswith("built-in op, then local function")
    assert trt_api.plugin_dispatch((10, 7)).order.startswith("registered plugin")


@pytest.mark.parametrize("text, expected", [
    ("8.2.1.8", (8, 2, 1, 8)), ("10.15.1", (10, 15, 1)), ("11.1.0+cuda13", (11, 1, 0)), ("8.6.0.post1", (8, 6, 0)),
    ("1.17.0rc1", (1, 17)), ("0", (0,)),  # ONNX Runtime pre-releases; the manifest's "any version"
])
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


def test_version_tuple_rejects_what_is_no_version():
    with pytest.raises(ValueError):
        version_tuple("rtx")


@pytest.mark.parametrize("built, runtime, compatible, runs", [
    ((8, 2, 1, 8), (8, 2, 1, 8), False, True),
    ((8, 2, 1, 8), (8, 2, 1, 9), False, True),   # the same release
    ((8, 2, 1), (8, 2, 3), False, False),
    ((10, 3, 0), (10, 5, 0), False, False),
    ((10, 3, 0), (10, 5, 0), True, True),       # version-compatible: later releases of the same major
    ((10, 5, 0), (10, 3, 0), True, False),      # never older ones
    ((8, 6, 1), (10, 0, 1), True, True),        # the supported cross-major pairs
    ((10, 9, 0), (11, 1, 0), True, True),
    ((8, 6, 1), (11, 1, 0), True, False),
    ((8, 5, 3), (8, 6, 1), True, False),        # no version-compatible engines before 8.6
])
def test_engine_runs_on(built, runtime, compatible, runs):
    assert trt_api.engine_runs_on(built, runtime, compatible) == runs


def test_activation_memory_is_asked_by_each_releases_name():
    assert trt_api.device_memory_attribute((8, 2, 1)) == trt_api.device_memory_attribute((10, 0)) == "device_memory_size"
    assert trt_api.device_memory_attribute((10, 1)) == trt_api.device_memory_attribute((11, 1)) == "device_memory_size_v2"


# -- targets ---------------------------------------------------------------------------------------


def test_targets_gpus_workspaces_and_tensorrt_releases():
    t = targets.TARGETS
    assert targets.NAMES == ("nano", "orin", "a100", "ada", "h100", "blackwell", "generic", "auto")
    assert [t[n].compute_capabilities for n in ("nano", "orin", "a100", "ada", "h100")] == [
        ((5, 3),), ((8, 7),), ((8, 0),), ((8, 9),), ((9, 0),)]
    assert (10, 0) in t["blackwell"].compute_capabilities and (12, 0) in t["blackwell"].compute_capabilities
    assert t["nano"].workspace_bytes == 256 << 20 and t["nano"].jetson and t["orin"].jetson and not t["h100"].jetson
    assert targets.tensorrt_text(t["nano"]) == "TensorRT 8.0 to 8.x"
    assert targets.tensorrt_text(t["orin"]) == "TensorRT 8.5 to 10.x"  # JetPack 5.1, 6.0 and 6.1/6.2


def test_nano_default_profiles_follow_the_model():
    nano = targets.TARGETS["nano"]
    profile = targets.default_profile
    assert profile(nano, "encoder", 128, 2) == Profile((1, 3, 16, 16), (1, 3, 512, 512), (1, 3, 768, 768))
    assert profile(nano, "decoder", 128, 2) == Profile((1, 128, 1, 1), (1, 128, 32, 32), (1, 128, 48, 48))
    assert profile(nano, "encoder", 256, 1).min == (1, 3, 8, 8)
    assert profile(nano, "decoder", 256, 1) == Profile((1, 256, 1, 1), (1, 256, 64, 64), (1, 256, 96, 96))


@pytest.mark.parametrize("name", ["a100", "ada", "h100", "blackwell"])
def test_server_profiles_hold_four_1080p_frames_and_are_tuned_for_the_papers(name):
    """A context reserves activations for the largest input: four 1080p frames (8.4 MP, a 4K frame in tiles),
    half of the 4 x 2048 x 2048 the servers had before."""
    profile = targets.default_profile(targets.TARGETS[name], "decoder", 256, 2)
    assert profile.opt == (1, 256, 32, 32) and profile.max == (4, 256, 68, 120)
    batch, _, height, width = targets.default_profile(targets.TARGETS[name], "encoder", 256, 2).max
    assert batch * height * width * 2 <= 4 * 2048 * 2048 and height >= 1080 and width >= 1920


@pytest.mark.parametrize("cc, name, why", [
    ((5, 3), "nano", "compute capability 5.3 is target nano"),
    ((8, 7), "orin", "is target orin"),
    ((9, 0), "h100", "is target h100"),
    ((12, 0), "blackwell", "is target blackwell"),
    ((8, 6), "ada", "8.6 has no target of its own: using ada, the nearest of its generation (8.9)"),
    ((9, 1), "h100", "the nearest of its generation (9.0)"),
    ((10, 1), "blackwell", "the nearest of its generation (10.0)"),
    ((7, 5), "generic", "warning: compute capability 7.5 has no tested target: a generic FP32 build"),
    ((7, 2), "generic", "7.2 has no tested target"),  # Jetson Xavier: not an Orin, not a server GPU
    ((6, 1), "generic", "--target chooses another"),
])
def test_auto_maps_every_compute_capability_to_a_target_and_says_why(cc, name, why):
    target, reason = targets.resolve("auto", cc)
    assert target.name == name and why in reason and "\n" not in reason


def test_jetson_targets_are_never_the_nearest_of_a_discrete_gpu():
    assert targets.auto((8, 8))[0].name == "ada"  # not orin (8.7), an integrated GPU
    assert targets.auto((5, 2))[0].name == "generic"  # a Maxwell desktop GPU is no Jetson Nano


def test_a_named_target_must_be_the_gpu_at_hand():
    assert targets.resolve("a100", (8, 0)) == (targets.TARGETS["a100"], None)
    assert targets.resolve("generic", (7, 5))[0].name == "generic"
    with pytest.raises(BuildError, match="target nano is compute capability 5.3, this GPU is 8.0"):
        targets.resolve("nano", (8, 0))
    with pytest.raises(BuildError, match="unknown target 'xavier'"):
        targets.resolve("xavier", (7, 2))


def test_tensorrt_releases_are_checked_per_target():
    targets.check_tensorrt(targets.TARGETS["nano"], (8, 2, 1))
    targets.check_tensorrt(targets.TARGETS["h100"], (8, 5, 3, 1))  # the release an offline H200 kit brings
    targets.check_tensorrt(targets.TARGETS["orin"], (10, 3, 0))
    with pytest.raises(BuildError, match="target nano supports TensorRT 8.0 to 8.x, this is 10.3.0"):
        targets.check_tensorrt(targets.TARGETS["nano"], (10, 3, 0))
    with pytest.raises(BuildError, match="target h100 supports TensorRT 8.5 to 11.x, this is 8.4.3"):
        targets.check_tensorrt(targets.TARGETS["h100"], (8, 4, 3))
    with pytest.raises(BuildError, match="target blackwell supports TensorRT 10.8 to 11.x, this is 10.7.0"):
        targets.check_tensorrt(targets.TARGETS["blackwell"], (10, 7, 0))


@pytest.mark.parametrize("profile, part, message", [
    (((1, 3, 16, 16), (1, 3, 32, 32), (1, 4, 64, 64)), "encoder", "max shape 1x4x64x64 is not Nx3xHxW"),
    (((1, 3, 16, 16), (1, 3, 40, 32), (1, 3, 64, 64)), "encoder", "multiples of 16"),
    (((1, 3, 16, 16), (1, 3, 128, 32), (1, 3, 64, 64)), "encoder", "min <= opt <= max"),
    (((1, 128, 2, 2), (1, 128, 2), (1, 128, 4, 4)), "decoder", "opt shape 1x128x2 is not Nx128xHxW"),
    ((1, 2, 3), "decoder", "three NCHW shapes"),
])
def test_profiles_are_checked(profile, part, message):
    with pytest.raises(BuildError, match=message):
        targets.check_profile(profile, part, 128, 2)


def test_a_valid_profile_becomes_int_tuples():
    assert targets.check_profile([[1, 128, 1, 1], [1, 128, 5, 7], [2, 128, 9, 9]], "decoder", 128, 2) == Profile(
        (1, 128, 1, 1), (1, 128, 5, 7), (2, 128, 9, 9))


# -- the ONNX each build mode parses --------------------------------------------------------------


def files(export_dir):
    manifest = read_manifest(export_dir)
    return {name: os.path.join(export_dir, name) for name in manifest["sha256"]}, manifest


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_inline_mode_parses_standard_ops(export_dir, part):
    paths, manifest = files(export_dir)
    data, plugin_layers, static = engine.onnx_for_tensorrt(paths[part + ".onnx"], "inline", (8, 2, 1))
    model = onnx.load_from_string(data)
    assert plugin_layers == 0 and static is None  # a dynamic export
    assert not model.functions and not any(n.op_type == GDN1_OP for n in model.graph.node)
    assert [o.domain for o in model.opset_import] == [""]
    std, _, _ = engine.onnx_for_tensorrt(paths[part + ".std.onnx"], "inline", (8, 2, 1), deconv="polyphase")
    assert onnx.load_from_string(std).graph.node == onnx.load(paths[part + ".std.onnx"]).graph.node


@pytest.mark.parametrize("name", ["decoder.onnx", "decoder.std.onnx"])
def test_tensorrt_gets_the_transposed_form_of_a_polyphase_export_by_default(export_dir, name):
    """The default build form puts the original 5x5 kernels back (one deconvolution layer each); both
    forms compute what the exported file computes."""
    import onnxruntime as ort

    paths, manifest = files(export_dir)
    assert manifest["deconv"] == "polyphase"
    y = np.rint(np.random.default_rng(3).standard_normal((1, manifest["N"], 3, 5)) * 2).astype(np.float32)

    def run(data):
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: y})[0]

    exported = run(onnx.load(paths[name]).SerializeToString())
    for form in ("convtranspose", "polyphase"):
        data, _, _ = engine.onnx_for_tensorrt(paths[name], "inline", (8, 2, 1), deconv=form)
        model = onnx.load_from_string(data)
        kernels = sorted(tuple(t.dims) for t in model.graph.initializer
                         if t.name in {n.input[1] for n in model.graph.node if n.op_type == "ConvTranspose"})
        if form == "convtranspose":
            assert kernels == [(manifest["N"], 3, 5, 5)] + [(manifest["N"], manifest["N"], 5, 5)] * (manifest["M"] + 1)
            assert not any("/phase" in n.name for n in model.graph.node)
        else:
            assert (manifest["N"], manifest["N"], 5, 5) not in kernels
        assert np.abs(run(data) - exported).max() <= 1e-5
    with pytest.raises(ValueError, match="deconv must be one of polyphase, convtranspose"):
        engine.onnx_for_tensorrt(paths[name], "inline", (8, 2, 1), deconv="fft")


@pytest.mark.parametrize("version, functions", [((8, 2, 1), 0), ((10, 6, 0), 0), ((10, 7, 0), 1), ((11, 1, 0), 1)])
def test_plugin_mode_keeps_gdn1_nodes_and_strips_functions_where_they_would_win(export_dir, version, functions):
    paths, manifest = files(export_dir)
    data, plugin_layers, _ = engine.onnx_for_tensorrt(paths["decoder.onnx"], "plugin", version)
    model = onnx.load_from_string(data)
    assert plugin_layers == manifest["M"] + 1 == sum(1 for n in model.graph.node if is_gdn1(n))
    assert len(model.functions) == functions
    if not functions:
        assert model.ir_version == 7


def test_plugin_mode_needs_the_custom_op_file(export_dir):
    paths, _ = files(export_dir)
    with pytest.raises(BuildError, match="has no GDN1 node for the plugin"):
        engine.onnx_for_tensorrt(paths["encoder.std.onnx"], "plugin", (10, 7, 0))


def test_a_fixed_shape_export_fixes_the_profile():
    static = (1, 3, 64, 96)
    assert engine._profile(None, static, targets.TARGETS["nano"], "encoder", 128, 2) == Profile(static, static, static)
    with pytest.raises(BuildError, match="fixed to encoder input 1x3x64x96"):
        engine._profile(((1, 3, 16, 16), static, static), static, targets.TARGETS["nano"], "encoder", 128, 2)


# -- sidecars --------------------------------------------------------------------------------------

FINGERPRINT = "ab" * 32
GPU = cuda.Device(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 << 30)
PLUGIN_SHA = "cd" * 32


def write_fake_engine(tmp_path, export_dir, gdn="plugin", flags=("DIRECT_IO",), data=b"serialized engine bytes"):
    """An engine file and its sidecar as build_engine writes them; the bytes are no engine (nothing here
    deserializes them: every test below is refused first)."""
    compiled = engine.Compiled(data, list(flags), "latent_hat", "image",
                               Profile((1, 128, 1, 1), (1, 128, 32, 32), (1, 128, 48, 48)))
    sidecar = engine.make_sidecar("decoder", 128, 2, FINGERPRINT, gdn, "convtranspose",
                                  PLUGIN_SHA if gdn == "plugin" else None, "10.7.0.23", GPU, "h100", compiled, 4 << 30,
                                  os.path.join(export_dir, "decoder.onnx"), 300 << 20)
    path = str(tmp_path / artifacts.engine_file_name("decoder", gdn))
    return path, artifacts.write_engine(path, data, sidecar)


def here(tensorrt="10.7.0.23", gpu=GPU, plugin=PLUGIN_SHA):
    return loader.environment(tensorrt, gpu, plugin)


def check_sidecar(sidecar, sha256, expect, environment=None):
    """What the loader checks: the sidecar against the file and the model, and with `environment` this machine."""
    problems = loader.environment_problems(sidecar, environment) if environment else ()
    artifacts.check_sidecar(sidecar, sha256, expect, problems)


EXPECT = {"fingerprint": FINGERPRINT, "N": 128, "M": 2, "part": "decoder"}


def test_engines_built_differently_keep_apart_in_benchmark_rows(export_dir):
    compiled = engine.Compiled(b"", [], "x", "y", Profile((1, 3, 16, 16), (1, 3, 512, 512), (1, 3, 768, 768)))

    def sidecar(part, gdn, deconv):
        return engine.make_sidecar(part, 128, 2, FINGERPRINT, gdn, deconv, None, "10.7.0.23", GPU, "h100", compiled,
                                   4 << 30, os.path.join(export_dir, part + ".onnx"), 0)

    def label(gdn, deconv):
        return engine_label([sidecar("encoder", gdn, deconv), sidecar("decoder", gdn, deconv)])

    assert label("inline", "convtranspose") == "tensorrt"
    assert label("plugin", "convtranspose") == "tensorrt-plugin"
    assert label("inline", "polyphase") == "tensorrt-polyphase"
    assert label("plugin", "polyphase") == "tensorrt-plugin-polyphase"
    assert engine_label([sidecar("encoder", "inline", "polyphase")]) == "tensorrt"  # the encoder has no deconv
    old = sidecar("decoder", "inline", "polyphase")
    del old["deconv"]  # engines built before the option: the export's form, unknown here
    assert engine_label([old]) == "tensorrt"


def test_sidecar_round_trip(tmp_path, export_dir):
    path, written = write_fake_engine(tmp_path, export_dir)
    assert os.path.basename(path) == "decoder.plugin.engine" and os.path.isfile(path + ".json")
    sidecar = artifacts.read_sidecar(path)
    assert sidecar == written
    assert sidecar["engine"] == "decoder.plugin.engine" and sidecar["engine_sha256"] == artifacts.file_sha256(path)
    assert sidecar["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "total_memory": 80 << 30}
    assert sidecar["profile"] == {"input": "latent_hat", "output": "image", "min": [1, 128, 1, 1],
                                  "opt": [1, 128, 32, 32], "max": [1, 128, 48, 48]}
    assert (sidecar["builder_flags"], sidecar["plugin_sha256"], sidecar["gdn"]) == (["DIRECT_IO"], PLUGIN_SHA, "plugin")
    assert sidecar["onnx"] == {"file": "decoder.onnx", "sha256": read_manifest(export_dir)["sha256"]["decoder.onnx"]}
    assert (sidecar["part"], sidecar["N"], sidecar["M"], sidecar["fingerprint"]) == ("decoder", 128, 2, FINGERPRINT)
    assert sidecar["tensorrt_version"] == "10.7.0.23" and sidecar["roi_trt_version"]
    assert sidecar["activation_bytes"] == 300 << 20 and sidecar["workspace_bytes"] == 4 << 30
    check_sidecar(sidecar, sidecar["engine_sha256"], EXPECT, here())


def test_a_modified_engine_is_refused(tmp_path, export_dir):
    path, sidecar = write_fake_engine(tmp_path, export_dir)
    with open(path, "ab") as f:
        f.write(b"!")
    refused = (r"refusing TensorRT engine decoder.plugin.engine: its SHA-256 is \w{12}\.\.\., "
               r"the sidecar says \w{12}\.\.\. \(the file changed after the build\)")
    with pytest.raises(EngineError, match=refused):
        check_sidecar(sidecar, artifacts.file_sha256(path), EXPECT)


@pytest.mark.parametrize("key, value, message", [
    ("fingerprint", "ef" * 32, r"fingerprint is abababababab\.\.\., expected efefefefefef\.\.\."),
    ("N", 256, "N is 128, expected 256"),
    ("M", 1, "M is 2, expected 1"),
    ("part", "encoder", "part is decoder, expected encoder"),
])
def test_an_engine_of_another_model_is_refused(tmp_path, export_dir, key, value, message):
    _, sidecar = write_fake_engine(tmp_path, export_dir)
    with pytest.raises(EngineError, match=message):
        check_sidecar(sidecar, sidecar["engine_sha256"], dict(EXPECT, **{key: value}))


@pytest.mark.parametrize("environment, message", [
    (here(tensorrt="10.8.0.43"), "built with TensorRT 10.7.0.23, this is 10.8.0.43"),
    (here(gpu=cuda.Device(0, "NVIDIA A100-SXM4-80GB", (8, 0), 80 << 30)),
     r"built for compute capability 9.0 \(NVIDIA H100 80GB HBM3\), this GPU is 8.0 \(NVIDIA A100-SXM4-80GB\)"),
    (here(plugin="ef" * 32), r"built with GDN1 plugin library cdcdcdcdcdcd\.\.\., the one here is efefefefefef\.\.\."),
])
def test_an_engine_for_another_machine_is_refused(tmp_path, export_dir, environment, message):
    _, sidecar = write_fake_engine(tmp_path, export_dir)
    with pytest.raises(EngineError, match=message):
        check_sidecar(sidecar, sidecar["engine_sha256"], EXPECT, environment)


def test_every_difference_is_named_on_one_line(tmp_path, export_dir):
    _, sidecar = write_fake_engine(tmp_path, export_dir)
    with pytest.raises(EngineError) as info:
        check_sidecar(sidecar, "0" * 64, dict(EXPECT, N=256), here(tensorrt="8.6.1", plugin=None))
    message = str(info.value)
    assert "\n" not in message
    assert [p.split(" ")[0] for p in message.split(": ", 1)[1].split("; ")] == ["its", "N", "built", "built"]


def test_inline_engines_need_no_plugin_and_version_compatible_ones_run_on_later_releases(tmp_path, export_dir):
    _, sidecar = write_fake_engine(tmp_path, export_dir, gdn="inline", flags=("VERSION_COMPATIBLE",))
    assert sidecar["plugin_sha256"] is None
    check_sidecar(sidecar, sidecar["engine_sha256"], EXPECT, here(tensorrt="10.16.1", plugin=None))
    with pytest.raises(EngineError, match="built with TensorRT 10.7.0.23, this is 10.6.0"):
        check_sidecar(sidecar, sidecar["engine_sha256"], EXPECT, here(tensorrt="10.6.0", plugin=None))


def test_a_foreign_sidecar_is_refused(tmp_path, export_dir):
    path, sidecar = write_fake_engine(tmp_path, export_dir)
    with pytest.raises(EngineError, match="not a roi-trt engine sidecar of format version 1"):
        check_sidecar(dict(sidecar, format_version=0), sidecar["engine_sha256"], EXPECT)
    with open(path + ".json", "w") as f:
        f.write("[]")
    with pytest.raises(EngineError, match="unreadable engine sidecar"):
        loader.load_engine(path, EXPECT)
    os.remove(path + ".json")
    with pytest.raises(EngineError, match="has no sidecar decoder.plugin.engine.json: roi-trt loads only engines"):
        loader.load_engine(path, EXPECT)
    os.remove(path)
    with pytest.raises(EngineError, match="no TensorRT engine .*decoder.plugin.engine \\(build it first\\)"):
        loader.load_engine(path, EXPECT)


LOAD = """
import json, sys
sys.modules["tensorrt"] = None  # importing it would raise ImportError: the refusal must come first
from roi_trt.backends.tensorrt.loader import load_engine
from roi_trt.errors import EngineError
try:
    load_engine(sys.argv[1], json.loads(sys.argv[2]))
except EngineError as exc:
    print(json.dumps(["EngineError", str(exc)]))
"""


def load_in_subprocess(path, expect):
    proc = subprocess.run([sys.executable, "-c", LOAD, path, json.dumps(expect)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_tampered_engine_is_refused_before_tensorrt_is_imported(tmp_path, export_dir):
    path, _ = write_fake_engine(tmp_path, export_dir)
    with open(path, "r+b") as f:
        f.write(b"S")
    kind, message = load_in_subprocess(path, EXPECT)
    assert kind == "EngineError" and "the file changed after the build" in message
    kind, message = load_in_subprocess(path, dict(EXPECT, fingerprint="ef" * 32))
    assert "fingerprint is abababababab..., expected efefefefefef..." in message


def test_without_a_gpu_loading_stops_before_tensorrt(tmp_path, export_dir):
    if cuda.detect().devices:
        pytest.skip("a CUDA device is present: test_tensorrt_gpu.py loads engines here")
    path, _ = write_fake_engine(tmp_path, export_dir)
    kind, message = load_in_subprocess(path, EXPECT)
    assert kind == "EngineError" and message.startswith("no CUDA device: ")


BUILD = """
import sys
sys.modules["tensorrt"] = None
from roi_trt.build.engine import build_engine
from roi_trt.errors import BuildError
try:
    build_engine(sys.argv[1], "encoder", 128, 2, "ab" * 32, target="nano", out_dir=sys.argv[2])
except BuildError as exc:
    print(exc)
"""


def test_without_a_gpu_building_stops_before_tensorrt(tmp_path, export_dir):
    if cuda.detect().devices:
        pytest.skip("a CUDA device is present: test_tensorrt_gpu.py builds engines here")
    proc = subprocess.run([sys.executable, "-c", BUILD, os.path.join(export_dir, "encoder.onnx"), str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.startswith("no CUDA device: "), proc.stdout
    assert os.listdir(str(tmp_path)) == []


def test_timing_caches_are_kept_per_tensorrt_release_and_gpu_model(tmp_path):
    path = engine.default_timing_cache("10.7.0.23", cuda.Device(0, "NVIDIA A100-SXM4-80GB", (8, 0), 0))
    assert path == os.path.join(str(tmp_path), "cache", "tensorrt", "timing-10.7.0.23-sm80-NVIDIA_A100-SXM4-80GB.cache")


def test_build_engine_checks_its_arguments_first(tmp_path):
    with pytest.raises(BuildError, match="gdn mode one of inline, plugin and deconv one of polyphase, convtranspose; "
                                         "got 'encoder', 'fused', 'convtranspose'"):
        engine.build_engine("x.onnx", "encoder", 128, 2, FINGERPRINT, gdn_mode="fused")
    with pytest.raises(BuildError, match="got 'decoder', 'inline', 'fft'"):
        engine.build_engine("x.onnx", "decoder", 128, 2, FINGERPRINT, deconv="fft")
    with pytest.raises(BuildError, match="version-compatible engines cannot carry the GDN1 plugin"):
        engine.build_engine("x.onnx", "encoder", 128, 2, FINGERPRINT, gdn_mode="plugin", version_compatible=True)


# -- CUDA device detection -------------------------------------------------------------------------


def cudart_apis():
    apis = cuda.cudart_apis()
    if not apis:
        pytest.skip("neither cuda-bindings nor a libcudart.so is installed here")
    if cuda.detect().devices:
        pytest.skip("a CUDA device is present (these tests check the no-device answers)")
    return apis


def test_detection_says_why_there_is_no_device():
    cudart_apis()
    detection = cuda.detect()
    assert detection.devices == [] and detection.api is None
    assert detection.reason.startswith("no CUDA device: ") and "\n" not in detection.reason


@pytest.mark.parametrize("library", ["cuda-bindings", "libcudart"])
def test_each_cuda_runtime_answers_for_real(library):
    apis = [api for api in cudart_apis() if api.library == library]
    if not apis:
        pytest.skip("{} is not installed here".format(library))
    for api in apis:
        detection = cuda.detect([api])
        assert detection.devices == [], api.label
        # this machine has no NVIDIA driver: the runtime answers cudaErrorInsufficientDriver (35)
        assert "cudaGetDeviceCount: CUDA error 35, cudaErrorInsufficientDriver" in detection.reason, detection.reason
        assert "no NVIDIA driver is loaded" in detection.reason and api.label in detection.reason


@pytest.mark.parametrize("library", ["cuda-bindings", "libcudart"])
def test_the_runners_cuda_calls_reach_the_runtime(library):
    """Every call the runner makes, made for real: each must fail with the driver's error 35, not a
    TypeError or a missing symbol."""
    apis = [api for api in cudart_apis() if api.library == library]
    if not apis:
        pytest.skip("{} is not installed here".format(library))
    calls = [("cudaSetDevice", lambda api: api.set_device(0)), ("cudaStreamCreate", lambda api: api.stream_create()),
             ("cudaStreamSynchronize", lambda api: api.stream_synchronize(0)),
             ("cudaStreamDestroy", lambda api: api.stream_destroy(0)), ("cudaMalloc", lambda api: api.malloc(1024)),
             ("cudaFree", lambda api: api.free(0)), ("cudaMallocHost", lambda api: api.malloc_host(1024)),
             ("cudaFreeHost", lambda api: api.free_host(0)),
             ("cudaMemcpyAsync", lambda api: api.memcpy_async(0, 0, 16, cuda.HOST_TO_DEVICE, 0)),
             ("cudaGetDeviceProperties", lambda api: api.properties(0))]
    for api in apis:
        for function, call in calls:
            with pytest.raises(BackendError, match="^{}: CUDA error 35, ".format(function)):
                call(api)


def test_the_runner_refuses_to_open_without_a_device():
    cudart_apis()
    from roi_trt.backends.tensorrt.runner import TensorRTBackend
    from roi_trt.store import resolve

    with pytest.raises(BackendError, match="^no CUDA device: "):
        TensorRTBackend(resolve("demo"))
    with pytest.raises(BackendError, match="tensorrt runs on cuda or cuda:N, not 'cpu'"):
        TensorRTBackend(resolve("demo"), device="cpu")
    with pytest.raises(BackendError, match=r"\$ROI_TRT_CUDA must be one of pycuda, cuda-bindings, libcudart"):
        cuda.open_runtime(0, "cupy")


# -- TensorRT from a directory (--tensorrt-home) ----------------------------------------------------------

HOME_CHECK = """
import os, sys
from roi_trt.backends.tensorrt import import_tensorrt
trt = import_tensorrt("the test")
print(trt.__version__, os.path.dirname(trt.__file__), bool(trt.get_plugin_registry().plugin_creator_list))
"""


def _link_all(source_dir, target_dir, pattern="*"):
    import glob

    os.makedirs(target_dir, exist_ok=True)
    for path in glob.glob(os.path.join(source_dir, pattern)):
        os.symlink(path, os.path.join(target_dir, os.path.basename(path)))


@pytest.mark.parametrize("layout", ["tarball", "pip-target"])
def test_tensorrt_from_an_unpacked_directory_is_the_one_imported(tmp_path, layout):
    """A real TensorRT 8.6 unpacked two ways: a tarball's lib/ and python/ (libraries loaded by roi-trt, no
    LD_LIBRARY_PATH), and wheels unpacked with `pip install --target` (the package and CUDA's wheels beside
    it). The venv has its own tensorrt installed: the home's must win."""
    venv = os.environ.get("ROI_TRT_TEST_TRT86")
    if not venv:
        pytest.skip("ROI_TRT_TEST_TRT86 not set (a Python <= 3.10 venv with tensorrt==8.6.0 and numpy from PyPI)")
    import glob

    site = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))[0]
    home = str(tmp_path / "TensorRT-8.6.0")
    if layout == "tarball":
        _link_all(os.path.join(site, "tensorrt"), os.path.join(home, "lib"), "lib*.so*")
        for lib in ("cudnn", "cublas", "cuda_runtime", "cuda_nvrtc"):
            _link_all(os.path.join(site, "nvidia", lib, "lib"), os.path.join(home, "lib"), "lib*.so*")
        _link_all(os.path.join(site, "tensorrt"), os.path.join(home, "python", "tensorrt"), "[!l]*")
    else:
        _link_all(os.path.join(site, "tensorrt"), os.path.join(home, "tensorrt"))
        _link_all(os.path.join(site, "nvidia"), os.path.join(home, "nvidia"))
    env = dict(os.environ, ROI_TRT_TENSORRT_HOME=home, PYTHONPATH=ROOT)
    env.pop("LD_LIBRARY_PATH", None)
    out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", HOME_CHECK], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    assert out.returncode == 0, out.stdout
    version, where, registry = out.stdout.split()[-3:]
    assert version == "8.6.0" and where.startswith(home) and registry == "True"


def test_a_tensorrt_home_without_tensorrt_says_where_it_looked(tmp_path):
    from roi_trt.backends.tensorrt import use_home

    with pytest.raises(RoiTrtError, match=r"no `tensorrt` package for Python 3\.\d+ \(looked in py3\d+/, python/"):
        use_home(str(tmp_path))
    with pytest.raises(RoiTrtError, match="no such directory"):
        use_home(str(tmp_path / "missing"))


def test_info_describes_each_engine_of_an_engine_directory(tmp_path, export_dir):
    from click.testing import CliRunner

    from roi_trt.cli import main

    engines = tmp_path / "engines"
    path, _ = write_fake_engine(engines, export_dir)
    artifacts.copy_model_files(export_dir, str(engines))
    result = CliRunner().invoke(main, ["info", str(engines)])
    assert result.exit_code == 0, result.output
    assert "model:           engines (engine)" in result.output
    assert "engine:          decoder.plugin.engine (23 bytes, SHA-256" in result.output
    assert "TensorRT 10.7.0.23 on NVIDIA H100 80GB HBM3 (compute capability 9.0), target h100" in result.output
    assert "1x128x1x1 / 1x128x32x32 / 1x128x48x48" in result.output
    assert "a context reserves 300 MiB for activations; workspace 4096 MiB" in result.output
    with open(path, "ab") as f:
        f.write(b"!")
    assert "the file differs, it will be refused" in CliRunner().invoke(main, ["info", str(engines)]).output
