"""TensorRT engines built from an export's ONNX on this machine's GPU, written with their sidecars.

An engine is executable code tied to one TensorRT release and one kind of GPU; its sidecar
(roi_trt.artifacts) records what it was built from, with and for, and the runtime
(roi_trt.backends.tensorrt.loader) checks it before deserializing. tensorrt and onnx are imported lazily;
nothing here creates a TensorRT object without a CUDA device.
"""

import collections
import os
import time

from .. import __version__, cuda
from ..artifacts import GDN_MODES, engine_file_name, file_sha256, sidecar_path, write_engine
from ..backends.tensorrt import api, import_tensorrt
from ..backends.tensorrt import plugin as plugin_loader
from ..backends.tensorrt.loader import deserialize
from ..errors import BuildError, OutputExistsError
from ..fileio import write_bytes_atomic
from ..optional import require, version_tuple
from ..spec import DECONV_FORMS, PARTS, TENSORRT_DECONV
from . import targets

# serialized: engine bytes; flags: builder flag names; input/output: tensor names; profile: targets.Profile
Compiled = collections.namedtuple("Compiled", "serialized flags input output profile")


def _silent(message):
    pass


def default_timing_cache(tensorrt_version, device):
    """Per TensorRT release and GPU model, in roi-trt's cache: TensorRT rejects a cache from another one."""
    from ..store import cache_dir

    gpu = "".join(c if c.isalnum() or c in "-." else "_" for c in device.name)
    return os.path.join(cache_dir(), "tensorrt", "timing-{}-sm{}{}-{}.cache".format(
        tensorrt_version, device.compute_capability[0], device.compute_capability[1], gpu))


# -- the ONNX TensorRT gets --------------------------------------------------------------------------


def _static_input_shape(proto):
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in dims)
    return shape if shape and all(shape) else None


def onnx_for_tensorrt(onnx_path, gdn_mode, version, deconv=TENSORRT_DECONV):
    """(serialized ONNX, GDN1 plugin layers it must give, its static input shape or None) for a build.

    inline: GDN1 nodes lowered to standard ops (every TensorRT parses those); plugin: the GDN1 nodes kept,
    their function bodies stripped where the parser would otherwise inline them. `deconv`: the form of
    the decoder's transposed convolutions (spec.DECONV_FORMS), whichever the export wrote.
    """
    onnx = require("onnx", "building TensorRT engines")
    from ..onnx_rewrite import is_gdn1, plugin_model, standard_ops_model, with_deconv

    proto = with_deconv(onnx.load(onnx_path), deconv)
    gdn_nodes = sum(1 for node in proto.graph.node if is_gdn1(node))
    if gdn_mode == "inline":
        return (standard_ops_model(proto) if gdn_nodes else proto).SerializeToString(), 0, _static_input_shape(proto)
    if not gdn_nodes:
        raise BuildError("{} has no GDN1 node for the plugin: give the export's custom-op file "
                         "(encoder.onnx / decoder.onnx), not the standard-ops one".format(onnx_path))
    if api.plugin_dispatch(version).strip_functions:
        proto = plugin_model(proto)
    return proto.SerializeToString(), gdn_nodes, _static_input_shape(proto)


# -- building ----------------------------------------------------------------------------------------


def _attach_timing_cache(config, path, log):
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    if not config.set_timing_cache(config.create_timing_cache(data), False):
        log("timing cache {} is from another TensorRT or GPU: starting a new one".format(path))
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config, path):
    cache = config.get_timing_cache()
    data = bytes(cache.serialize()) if cache is not None else b""
    if data:
        write_bytes_atomic(path, data)


def compile_network(trt, version, data, label, profile, workspace_bytes, plugin_layers=0, timing_cache=None,
                    version_compatible=False, log=None):
    """Serialized ONNX -> Compiled engine: explicit batch, FP32 (TF32 off), one optimization profile.

    `plugin_layers` is how many GDN1 plugin layers the parse must give (0: none), so a GDN1 node that the
    parser resolved otherwise (its function inlined, or a plugin not found) fails the build.
    """
    log = log or _silent
    logger = api.logger(trt)
    builder = trt.Builder(logger)
    network = api.make_network(builder, trt, version)
    parser = trt.OnnxParser(network, logger)
    if plugin_layers:
        api.set_parser_flags(parser, trt, api.plugin_dispatch(version).parser_flags)
    api.parse(parser, data, label)
    found = api.plugin_layer_count(network)
    if found != plugin_layers:
        raise BuildError("{}: TensorRT made {} plugin layers of its {} GDN1 nodes (parser order here: {})".format(
            label, found, plugin_layers, api.plugin_dispatch(version).order))
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise BuildError("{}: expected one input and one output, got {} and {}".format(
            label, network.num_inputs, network.num_outputs))
    tensor = network.get_input(0)
    config = builder.create_builder_config()
    flags = api.configure(config, trt, version, workspace_bytes, version_compatible)
    optimization = builder.create_optimization_profile()
    optimization.set_shape(tensor.name, *profile)
    config.add_optimization_profile(optimization)
    if timing_cache:
        _attach_timing_cache(config, timing_cache, log)
    log("building {} (input {}: min {}, opt {}, max {})".format(
        label, tensor.name, *(api.shape_text(s) for s in profile)))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError("TensorRT could not build {} (its log above says why)".format(label))
    if timing_cache:
        _save_timing_cache(config, timing_cache)
    return Compiled(bytes(serialized), flags, tensor.name, network.get_output(0).name, profile)


def _profile(shapes, static, target, part, N, M):
    if shapes is not None:
        profile = targets.check_profile(shapes, part, N, M)
    elif static is not None:
        profile = targets.check_profile((static,) * 3, part, N, M)
    else:
        return targets.default_profile(target, part, N, M)
    if static is not None and any(shape != static for shape in profile):
        raise BuildError("this export is fixed to {} input {}; the profile must be that shape".format(
            part, api.shape_text(static)))
    return profile


def build_engine(onnx_path, part, N, M, fingerprint, target="auto", shapes=None, gdn_mode="inline", plugin_path=None,
                 out_dir=".", timing_cache=None, device=0, version_compatible=False, replace=True, log=None,
                 deconv=TENSORRT_DECONV):
    """Build the engine of one transform on this machine's GPU; -> the engine's path (sidecar beside it).

    target: a targets.NAMES entry (checked against the GPU); shapes: (min, opt, max) NCHW input shapes,
    default the target's (or the export's fixed shape); gdn_mode: "inline" (standard ops) or "plugin"
    (the GDN1 plugin library, `plugin_path` or its default location); timing_cache: a file reused across
    builds, default one per TensorRT release and GPU in roi-trt's cache; deconv: the decoder's form
    (spec.DECONV_FORMS, recorded in the sidecar).
    """
    log = log or _silent
    if part not in PARTS or gdn_mode not in GDN_MODES or deconv not in DECONV_FORMS:
        raise BuildError("part must be one of {}, gdn mode one of {} and deconv one of {}; got {!r}, {!r}, {!r}".format(
            ", ".join(PARTS), ", ".join(GDN_MODES), ", ".join(DECONV_FORMS), part, gdn_mode, deconv))
    if version_compatible and gdn_mode == "plugin":
        raise BuildError("version-compatible engines cannot carry the GDN1 plugin: build them with --gdn inline")
    path = os.path.join(out_dir, engine_file_name(part, gdn_mode))
    if not replace:
        for existing in (path, sidecar_path(path)):
            if os.path.lexists(existing):
                raise OutputExistsError("{} exists (--force replaces it)".format(existing))
    gpu = cuda.device(device, BuildError)
    target, why = targets.resolve(target, gpu.compute_capability)
    if why:
        log(why)
    cuda.use_device(gpu.index)  # before the builder exists: it builds on the thread's current device
    trt = import_tensorrt("building TensorRT engines")
    version = version_tuple(trt.__version__)
    targets.check_tensorrt(target, version)
    data, plugin_layers, static = onnx_for_tensorrt(onnx_path, gdn_mode, version, deconv)
    profile = _profile(shapes, static, target, part, N, M)
    plugin = plugin_loader.load_plugin(plugin_path) if gdn_mode == "plugin" else None
    if timing_cache is None:
        timing_cache = default_timing_cache(trt.__version__, gpu)
    compiled = compile_network(trt, version, data, "{} ({})".format(os.path.basename(onnx_path), part), profile,
                               target.workspace_bytes, plugin_layers, timing_cache, version_compatible, log)
    activations = activation_bytes(trt, version, compiled.serialized, version_compatible)
    sidecar = make_sidecar(part, N, M, fingerprint, gdn_mode, deconv, plugin and plugin.sha256, trt.__version__, gpu,
                           target.name, compiled, target.workspace_bytes, onnx_path, activations)
    write_engine(path, compiled.serialized, sidecar, replace)
    log("wrote {} ({:.1f} MB; an execution context reserves {:.0f} MiB for activations) and its sidecar".format(
        path, len(compiled.serialized) / 1e6, activations / 2.0 ** 20))
    return path


def activation_bytes(trt, version, serialized, version_compatible=False):
    """Device memory an execution context of this engine reserves (for its profile's largest input), as
    TensorRT itself reports it; the engine is deserialized here, on the GPU that built it, to ask."""
    trt_runtime, engine = deserialize(trt, serialized, version_compatible)  # kept alive while the engine is asked
    if engine is None:
        raise BuildError("TensorRT could not deserialize the engine it just built (its log above says why)")
    return api.device_memory_bytes(engine, version)


# -- sidecars ----------------------------------------------------------------------------------------


def make_sidecar(part, N, M, fingerprint, gdn_mode, deconv, plugin_sha256, tensorrt_version, gpu, target, compiled,
                 workspace_bytes, onnx_path, activation_bytes):
    """What an engine was built from (model, ONNX), with (TensorRT, flags, plugin) and for (GPU, shapes, the
    activation memory each execution context reserves)."""
    return {
        "roi_trt_version": __version__,
        "part": part,
        "N": int(N),
        "M": int(M),
        "fingerprint": fingerprint,
        "onnx": {"file": os.path.basename(onnx_path), "sha256": file_sha256(onnx_path)},
        "gdn": gdn_mode,
        "deconv": deconv,
        "plugin_sha256": plugin_sha256,
        "tensorrt_version": tensorrt_version,
        "gpu": {"name": gpu.name, "compute_capability": cuda.cc_text(gpu.compute_capability),
                "total_memory": gpu.total_memory},
        "target": target,
        "profile": dict({"input": compiled.input, "output": compiled.output},
                        **{key: list(shape) for key, shape in zip(targets.Profile._fields, compiled.profile)}),
        "builder_flags": list(compiled.flags),
        "workspace_bytes": int(workspace_bytes),
        "activation_bytes": int(activation_bytes),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
