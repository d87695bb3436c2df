"""NVIDIA's own ONNX parser and builder on our exports, without a GPU: TensorRT-RTX (`pip install
tensorrt-rtx`) parses ONNX and builds CPU "ahead of time" engines anywhere.

Its Python API is TensorRT 11's (checked below), so roi-trt's 11.x build path runs on it as it is:
network, parser, FP32 config, profile, serialization, sidecar. It cannot add plugin layers (the process
aborts), so nothing here registers a GDN1 plugin; the custom-op files are parsed only where no plugin
layer can result, to show that a GDN1 node that does not reach the plugin fails the build.
"""

import os

import onnx
import pytest

from roi_trt import artifacts
from roi_trt.backends.tensorrt import api as trt_api
from roi_trt.build import engine
from roi_trt.build.targets import Profile
from roi_trt.errors import BuildError
from roi_trt.artifacts import read_manifest

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (pip install tensorrt-rtx)")

TRT11 = (11, 1, 0)
WORKSPACE = 512 << 20  # RTX fails a build whose tactics need more, unlike TensorRT, which skips them


def test_tensorrt_rtx_has_tensorrt_11s_builder_api():
    assert not hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and not trt_api.network_flag_names(TRT11)
    assert not hasattr(trt.BuilderFlag, "FP16")  # strongly typed
    assert all(hasattr(trt.BuilderFlag, name) for name in trt_api.cleared_flag_names(TRT11))
    assert trt_api.workspace_setting(TRT11) == "memory_pool_limit" and hasattr(trt.MemoryPoolType, "WORKSPACE")
    assert all(hasattr(trt.OnnxParserFlag, name) for name in trt_api.plugin_dispatch(TRT11).parser_flags)
    assert hasattr(trt.ICudaEngine, trt_api.device_memory_attribute(TRT11))  # what the sidecar records
    assert not hasattr(trt.ICudaEngine, "device_memory_size")  # gone in 11


@pytest.fixture(scope="module")
def export(export_dir):
    return export_dir, read_manifest(export_dir)


def parsed(path):
    builder = trt.Builder(trt_api.logger(trt))
    network = trt_api.make_network(builder, trt, TRT11)
    parser = trt.OnnxParser(network, trt_api.logger(trt))
    with open(path, "rb") as f:
        trt_api.parse(parser, f.read(), os.path.basename(path))
    return builder, network, parser


@pytest.mark.parametrize("part, in_channels, out_channels", [("encoder", 3, "N"), ("decoder", "N", 3)])
def test_the_standard_ops_files_parse_completely(export, part, in_channels, out_channels):
    export_dir, manifest = export
    path = os.path.join(export_dir, part + ".std.onnx")
    model = onnx.load(path)
    _, network, parser = parsed(path)
    assert parser.num_errors == 0
    layers = {network.get_layer(i).name for i in range(network.num_layers)}
    assert {node.name for node in model.graph.node} <= layers  # every ONNX node became a layer
    assert trt_api.plugin_layer_count(network) == 0
    assert (network.num_inputs, network.num_outputs) == (1, 1)
    channels = {"N": manifest["N"], 3: 3}
    tensor_in, tensor_out = network.get_input(0), network.get_output(0)
    assert (tensor_in.name, tuple(tensor_in.shape)) == (model.graph.input[0].name, (-1, channels[in_channels], -1, -1))
    assert (tensor_out.name, tuple(tensor_out.shape)) == (
        model.graph.output[0].name, (-1, channels[out_channels], -1, -1))
    assert tensor_in.dtype == tensor_out.dtype == trt.float32


def small_profile(part, manifest):
    if part == "encoder":
        return Profile((1, 3, 16, 16), (1, 3, 256, 256), (2, 3, 512, 512))
    n, d = manifest["N"], manifest["downsampling"]
    return Profile((1, n, 1, 1), (1, n, 256 // d, 256 // d), (2, n, 512 // d, 512 // d))


@pytest.mark.filterwarnings("ignore:.*Timing cache operations are no-ops in TensorRT-RTX:DeprecationWarning")
@pytest.mark.parametrize("part, deconv", [("encoder", "convtranspose"), ("decoder", "convtranspose"),
                                          ("decoder", "polyphase")])
@pytest.mark.parametrize("source", [".std.onnx", ".onnx"])  # the custom-op file through build-time lowering
def test_fp32_engines_build_and_carry_a_sidecar(export, tmp_path, part, deconv, source):
    export_dir, manifest = export
    path = os.path.join(export_dir, part + source)
    data, plugin_layers, static = engine.onnx_for_tensorrt(path, "inline", TRT11, deconv)
    assert (plugin_layers, static) == (0, None)
    profile = small_profile(part, manifest)
    cache = str(tmp_path / "timing.cache")
    compiled = engine.compile_network(trt, TRT11, data, part, profile, WORKSPACE, timing_cache=cache)
    assert len(compiled.serialized) > 1 << 20 and compiled.flags == []  # TF32 cleared, nothing else set
    assert compiled.profile == profile
    model = onnx.load(path)
    assert (compiled.input, compiled.output) == (model.graph.input[0].name, model.graph.output[0].name)
    from roi_trt.cuda import Device

    gpu = Device(0, "ahead of time", (8, 0), 0)
    sidecar = engine.make_sidecar(part, manifest["N"], manifest["M"], manifest["fingerprint"], "inline", deconv,
                                  None, trt.__version__, gpu, "a100", compiled, WORKSPACE, path, 0)
    assert sidecar["deconv"] == deconv
    out = str(tmp_path / artifacts.engine_file_name(part, "inline"))
    artifacts.write_engine(out, compiled.serialized, sidecar)
    expect = {"fingerprint": manifest["fingerprint"], "N": manifest["N"], "M": manifest["M"], "part": part}
    artifacts.check_sidecar(artifacts.read_sidecar(out), artifacts.file_sha256(out), expect)


def test_a_gdn1_node_that_misses_the_plugin_fails_the_build(export):
    """No GDN1 plugin is registered in TensorRT-RTX: stripped of its function, the node is 'not found';
    with its function kept, the parser inlines it, and the missing plugin layers fail the build instead
    of giving a silently pluginless engine."""
    export_dir, manifest = export
    path = os.path.join(export_dir, "encoder.onnx")
    profile = small_profile("encoder", manifest)
    stripped, layers, _ = engine.onnx_for_tensorrt(path, "plugin", (10, 6, 0))
    with pytest.raises(BuildError) as info:
        engine.compile_network(trt, TRT11, stripped, "encoder.onnx", profile, WORKSPACE, layers)
    message = str(info.value)
    assert message.startswith("TensorRT's ONNX parser rejects encoder.onnx: In node ") and "\n" not in message
    assert message.count("Plugin not found") == layers == manifest["M"] + 1
    kept, layers, _ = engine.onnx_for_tensorrt(path, "plugin", TRT11)
    assert onnx.load_from_string(kept).functions
    with pytest.raises(BuildError, match=r"encoder.onnx: TensorRT made 0 plugin layers of its 3 GDN1 nodes \(parser "
                                         r"order here: registered plugin, then built-in op, then local function\)"):
        engine.compile_network(trt, TRT11, kept, "encoder.onnx", profile, WORKSPACE, layers)
