"""An engine is deserialized only when its sidecar vouches for it (roi_trt.artifacts): first the file's
SHA-256 and the model the caller expects, before `tensorrt` is even imported (a modified or foreign file
is refused there), then this machine's TensorRT release, GPU and plugin library; only then does TensorRT
deserialize it. Nothing here creates a TensorRT Runtime without a CUDA device (it would crash the process).
"""

import collections

from ... import cuda
from ...artifacts import check_sidecar, file_sha256, read_engine, read_sidecar, short
from ...errors import EngineError
from ...optional import version_tuple
from . import api, import_tensorrt, plugin

# engine: the ICudaEngine; runtime: the trt.Runtime it came from (kept alive with it); sidecar: its
# checked sidecar; trt, version: the tensorrt module and its version tuple
LoadedEngine = collections.namedtuple("LoadedEngine", "engine runtime sidecar trt version")


def environment(tensorrt_version, gpu, plugin_sha256):
    """What an engine is compared with here: this TensorRT, this GPU, the plugin library found here."""
    return {"tensorrt_version": tensorrt_version, "gpu": gpu.name,
            "compute_capability": cuda.cc_text(gpu.compute_capability), "plugin_sha256": plugin_sha256}


def environment_problems(sidecar, env):
    """Why an engine with this sidecar cannot run in `env` (see `environment`): [] when it can."""
    problems = []
    built, here = sidecar.get("tensorrt_version"), env["tensorrt_version"]
    compatible = "VERSION_COMPATIBLE" in sidecar.get("builder_flags", ())
    try:
        runs = api.engine_runs_on(version_tuple(built), version_tuple(here), compatible)
    except ValueError:  # no version recorded
        runs = False
    if not runs:
        problems.append("built with TensorRT {}, this is {}".format(built, here))
    gpu = sidecar.get("gpu") or {}
    if gpu.get("compute_capability") != env["compute_capability"]:
        problems.append("built for compute capability {} ({}), this GPU is {} ({})".format(
            gpu.get("compute_capability"), gpu.get("name"), env["compute_capability"], env["gpu"]))
    if sidecar.get("plugin_sha256") != env["plugin_sha256"]:
        problems.append("built with GDN1 plugin library {}, the one here is {}".format(
            short(sidecar.get("plugin_sha256")), short(env["plugin_sha256"])))
    return problems


def deserialize(trt, data, version_compatible=False):
    """(runtime, ICudaEngine or None) of serialized engine bytes that were checked or built here. A
    version-compatible engine carries its lean runtime as host code, which TensorRT runs only when told to."""
    runtime = trt.Runtime(api.logger(trt))
    if version_compatible:
        runtime.engine_host_code_allowed = True
    return runtime, runtime.deserialize_cuda_engine(data)


def load_engine(engine_path, expect, plugin_path=None, device=0):
    """Deserialize an engine after its sidecar is accepted (see the module docstring); -> LoadedEngine.

    `expect`: model facts the sidecar must state (artifacts.model_facts). The caller makes CUDA device
    `device` current.
    """
    sidecar = read_sidecar(engine_path)
    data, digest = read_engine(engine_path)
    check_sidecar(sidecar, digest, expect)
    gpu = cuda.device(device, EngineError)
    library = plugin.locate(plugin_path) if sidecar.get("gdn") == "plugin" else None
    trt = import_tensorrt("loading TensorRT engines")
    env = environment(trt.__version__, gpu, library and file_sha256(library))
    check_sidecar(sidecar, digest, expect, environment_problems(sidecar, env))
    if library:
        plugin.load_plugin(library)
    # a version-compatible engine's lean runtime is host code: trusted after the checks above
    runtime, engine = deserialize(trt, data, "VERSION_COMPATIBLE" in sidecar.get("builder_flags", ()))
    if engine is None:
        raise EngineError("TensorRT {} could not deserialize {} (its log above says why)".format(
            trt.__version__, engine_path))
    return LoadedEngine(engine, runtime, sidecar, trt, version_tuple(trt.__version__))
