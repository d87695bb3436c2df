"""TensorRT's Python API across the versions roi-trt meets: 8.0/8.2 (Jetson Nano), 8.5-10.x, 11.x.

The upper half decides, from a version tuple alone, what each version needs (testable without
TensorRT); the lower half applies those decisions to real `tensorrt` objects. Flags are always named,
never numbered: enum values changed between releases (10.16 -> 11.1).
"""

import collections
import threading

from ...errors import BackendError, BuildError

# -- decisions by version ---------------------------------------------------------------------------



def network_flag_names(version):
    """Network creation flags: 8.x and 9.x need EXPLICIT_BATCH (8.x defaults to implicit batch); 10 ignores
    it and 11 removed it."""
    return ("EXPLICIT_BATCH",) if version < (10,) else ()


def workspace_setting(version):
    """How the workspace limit is set: `max_workspace_size` up to 8.3 (its default 0 leaves layers no
    scratch memory), `set_memory_pool_limit(WORKSPACE, ...)` from 8.4."""
    return "max_workspace_size" if version < (8, 4) else "memory_pool_limit"


def cleared_flag_names(version):
    """Builder flags cleared for the paper's FP32 protocol: TF32, on by default since 7.1 and kept in 11.x
    (whose migration guide removes FP16/INT8/FP8/BF16/INT4/FP4 and the precision-constraint flags only)."""
    return ("TF32",)


def io_style(version):
    """Engine I/O: binding indices and `execute_async_v2` before 8.5; named tensors, `set_tensor_address`
    and `execute_async_v3` from 8.5 (bindings are gone in 10)."""
    return "bindings" if version < (8, 5) else "tensors"


# order: how the ONNX parser resolves a GDN1 node; strip_functions: whether the model-local function
# bodies must be removed so that the plugin is used; parser_flags: OnnxParserFlag names to set.
Dispatch = collections.namedtuple("Dispatch", "order strip_functions parser_flags")


def plugin_dispatch(version):
    """How a `--gdn plugin` build reaches the GDN1 plugin through the ONNX parser of `version`."""
    if version < (9,):
        # the plugin registry by op type; local functions are ignored (and the IR 8 they need is newer
        # than 8.x's parser): the stripped IR 7 model is what it reads
        return Dispatch("plugin registry by op type", True, ())
    if version < (10, 7):
        return Dispatch("built-in op, then local function, then plugin", True, ())
    if version < (10, 15):
        return Dispatch("registered plugin, then built-in op, then local function", False, ())
    return Dispatch("registered plugin, then built-in op, then local function", False, ("ENABLE_PLUGIN_OVERRIDE",))


def shape_text(shape):
    return "x".join(str(v) for v in shape)


def device_memory_attribute(version):
    """The engine's report of the device memory a context reserves: `device_memory_size` before 10.1,
    `device_memory_size_v2` from 10.1 (the old one is gone in 11)."""
    return "device_memory_size" if version < (10, 1) else "device_memory_size_v2"


def version_compatible_available(version):
    """Version-compatible engines (BuilderFlag.VERSION_COMPATIBLE) exist from 8.6."""
    return version >= (8, 6)


# Across majors a version-compatible engine runs only on these runtimes (NVIDIA's support matrix).
_CROSS_MAJOR = {(8, 9), (8, 10), (10, 11)}


def engine_runs_on(built, runtime, version_compatible):
    """Whether an engine built by TensorRT `built` deserializes in TensorRT `runtime`: the same release
    (major.minor.patch), or for a version-compatible engine a later one of the same or a supported major."""
    if not version_compatible:
        return tuple(built[:3]) == tuple(runtime[:3])
    if tuple(runtime) < tuple(built) or not version_compatible_available(built):
        return False
    return built[0] == runtime[0] or (built[0], runtime[0]) in _CROSS_MAJOR


# -- applied to tensorrt objects ----------------------------------------------------------------------

_loggers = {}
_loggers_lock = threading.Lock()


def logger(trt):
    """One logger per TensorRT module and process (8.x warns when builders and runtimes get different ones)."""
    with _loggers_lock:
        if trt.__name__ not in _loggers:
            _loggers[trt.__name__] = trt.Logger(trt.Logger.WARNING)
        return _loggers[trt.__name__]


def _member(enum, name, what):
    try:
        return getattr(enum, name)
    except AttributeError:
        raise BuildError("this TensorRT has no {}.{} ({})".format(enum.__name__, name, what)) from None


def enum_name(value):
    """'TF32' for trt.BuilderFlag.TF32 (pybind11 enums print as 'BuilderFlag.TF32' in every version)."""
    return str(value).split(".")[-1]


def make_network(builder, trt, version):
    """An explicit-batch network definition on every version."""
    flags = 0
    for name in network_flag_names(version):
        flags |= 1 << int(_member(trt.NetworkDefinitionCreationFlag, name, "network creation"))
    return builder.create_network(flags)


def configure(config, trt, version, workspace_bytes, version_compatible=False):
    """Workspace limit, FP32 (TF32 cleared) and optionally version compatibility; -> the set flags' names."""
    if workspace_setting(version) == "max_workspace_size":
        config.max_workspace_size = int(workspace_bytes)
    else:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in cleared_flag_names(version):
        config.clear_flag(_member(trt.BuilderFlag, name, "needed to keep FP32 layers in FP32"))
    if version_compatible:
        if not version_compatible_available(version):
            raise BuildError("version-compatible engines need TensorRT 8.6 or newer, this is {}".format(
                ".".join(str(v) for v in version)))
        config.set_flag(_member(trt.BuilderFlag, "VERSION_COMPATIBLE", "version-compatible engines"))
    return builder_flag_names(config, trt)


def device_memory_bytes(engine, version):
    return int(getattr(engine, device_memory_attribute(version)))


def builder_flag_names(config, trt):
    """Names of the builder flags set on `config`, sorted."""
    return sorted(name for name, flag in trt.BuilderFlag.__members__.items() if config.get_flag(flag))


def set_parser_flags(parser, trt, names):
    for name in names:
        parser.set_flag(getattr(trt.OnnxParserFlag, name))


def parse(parser, data, label, shown=5):
    """Parse serialized ONNX; a refusal lists the parser's own errors on one line."""
    if parser.parse(data):
        return
    errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
    more = "; and {} more".format(len(errors) - shown) if len(errors) > shown else ""
    raise BuildError("TensorRT's ONNX parser rejects {}: {}{}".format(
        label, "; ".join(errors[:shown]) or "no error reported", more))


def layer_type_names(network):
    return [enum_name(network.get_layer(i).type) for i in range(network.num_layers)]


def plugin_layer_count(network):
    """Plugin layers of a parsed network (PLUGIN, PLUGIN_V2 or PLUGIN_V3 by version)."""
    return sum(1 for name in layer_type_names(network) if name.startswith("PLUGIN"))


# -- running engines -----------------------------------------------------------------------------------

# input/output: tensor names; input_index/output_index: binding indices (8.0-8.4 only)
EngineIO = collections.namedtuple("EngineIO", "style input output input_index output_index")


def engine_io(engine, trt, version):
    """The engine's one float32 input and one float32 output."""
    style = io_style(version)
    if style == "bindings":
        names = [engine.get_binding_name(i) for i in range(engine.num_bindings)]
        inputs = [n for i, n in enumerate(names) if engine.binding_is_input(i)]
        dtypes = [engine.get_binding_dtype(i) for i in range(engine.num_bindings)]
    else:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        dtypes = [engine.get_tensor_dtype(n) for n in names]
    outputs = [n for n in names if n not in inputs]
    if len(inputs) != 1 or len(outputs) != 1 or any(d != trt.float32 for d in dtypes):
        raise BackendError("the engine has inputs {} and outputs {}; expected one float32 of each".format(
            inputs, outputs))
    return EngineIO(style, inputs[0], outputs[0], names.index(inputs[0]), names.index(outputs[0]))


def set_input_shape(context, io, shape):
    """Set the input shape for the next run; -> the output shape it gives."""
    if io.style == "bindings":
        ok = context.set_binding_shape(io.input_index, tuple(shape))
        out = context.get_binding_shape(io.output_index)
    else:
        ok = context.set_input_shape(io.input, tuple(shape))
        out = context.get_tensor_shape(io.output)
    if not ok:
        raise BackendError("the engine does not accept input shape {}".format("x".join(str(s) for s in shape)))
    return tuple(int(s) for s in out)


def execute(context, io, input_ptr, output_ptr, stream_handle):
    """Enqueue one inference on the stream (device pointers as ints)."""
    if io.style == "bindings":
        bindings = [0, 0]
        bindings[io.input_index], bindings[io.output_index] = int(input_ptr), int(output_ptr)
        ok = context.execute_async_v2(bindings, stream_handle)
    else:
        ok = (context.set_tensor_address(io.input, int(input_ptr))
              and context.set_tensor_address(io.output, int(output_ptr))
              and context.execute_async_v3(stream_handle))
    if not ok:
        raise BackendError("TensorRT could not enqueue the inference (see its log above)")
