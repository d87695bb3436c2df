"""`roi-trt serve repo`: a Triton Inference Server model repository for decoding the streams of one or
more models.

    <repository>/
      roi_decode/                 Python backend: the one endpoint cameras call
        config.pbtxt              dynamic batching, instance group, limits, sink, synthesis mode
        1/model.py                imports roi_trt.serve.triton_model.DecodeModel
        1/served_models.json      name, files and synthesis model of every served model
        1/models/<name>/          manifest + entropy tables (+ the decoder, when synthesis is in-process)
      <name>_synthesis/           one per model unless synthesis is in-process:
        config.pbtxt              onnxruntime_onnx | tensorrt_plan | python, dynamic batching, instances
        1/model.onnx | 1/model.plan | 1/model.py + 1/export/

Synthesis modes: `inprocess` (everything in `roi_decode`, which is what runs with only the Python
backend), `onnxruntime` and `tensorrt` (Triton's own backends: NVIDIA's containers), `python` (a separate
Python-backend model, batched across cameras, for servers without those backends). Configurations are
built as Triton's own `ModelConfig` protobuf messages (from tritonclient), so every field is one Triton
knows.
"""

import json
import os
import shutil

from ..artifacts import MODEL_FILES, STANDARD_OPS, checked_engine, is_repository, mark_repository, replacing_dir, sidecar_path
from ..errors import ModelError, UsageError
from ..optional import require
from ..store import resolve
from .service import DEFAULT_LIMITS, SERVED_MODELS
from .triton_model import IMAGE, LATENT, SIZE, STREAM, SYNTHESIZED

DECODE_MODEL = "roi_decode"
SYNTHESIS_MODES = ("inprocess", "onnxruntime", "tensorrt", "python")
_SHIM = "# Written by roi-trt serve repo: the model lives in the installed roi_trt package.\n" \
        "from roi_trt.serve.triton_model import {} as TritonPythonModel  # noqa: F401\n"


def _config_messages():
    require("tritonclient.grpc", "roi-trt serve repo")
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def _instance_group(pb, count, device):
    kind = pb.ModelInstanceGroup.KIND_GPU if device == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    return pb.ModelInstanceGroup(count=count, kind=kind)


def _base_config(pb, name, max_batch, instances, device, queue_delay_us):
    config = pb.ModelConfig(name=name, max_batch_size=max_batch)
    config.instance_group.append(_instance_group(pb, instances, device))
    config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    return config


def _set_parameters(config, parameters):
    for key, value in sorted(parameters.items()):
        if value is not None:
            config.parameters[key].string_value = str(value)


def decode_config(pb, synthesis, max_batch, instances, device, queue_delay_us, parameters):
    """The `roi_decode` model: STREAM (bytes) -> IMAGE (uint8 H x W x 3), SIZE (height, width)."""
    config = _base_config(pb, DECODE_MODEL, max_batch, instances, device if synthesis == "inprocess" else "cpu",
                          queue_delay_us)
    config.backend = "python"
    config.input.append(pb.ModelInput(name=STREAM, data_type=pb.TYPE_STRING, dims=[1]))
    config.output.extend([pb.ModelOutput(name=IMAGE, data_type=pb.TYPE_UINT8, dims=[-1, -1, 3]),
                          pb.ModelOutput(name=SIZE, data_type=pb.TYPE_INT32, dims=[2])])
    _set_parameters(config, parameters)
    return config


def synthesis_config(pb, name, kind, N, max_batch, instances, device, queue_delay_us, parameters):
    """A synthesis model: latent_hat [N, h, w] (float32) -> image [3, h*d, w*d]."""
    config = _base_config(pb, name, max_batch, instances, device, queue_delay_us)
    if kind == "onnxruntime":
        config.platform = "onnxruntime_onnx"
    elif kind == "tensorrt":
        config.platform = "tensorrt_plan"
    else:
        config.backend = "python"
        _set_parameters(config, parameters)
    config.input.append(pb.ModelInput(name=LATENT, data_type=pb.TYPE_FP32, dims=[N, -1, -1]))
    config.output.append(pb.ModelOutput(name=SYNTHESIZED, data_type=pb.TYPE_FP32, dims=[3, -1, -1]))
    return config


def _write_config(directory, config):
    from google.protobuf import text_format

    with open(os.path.join(directory, "config.pbtxt"), "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(config))


def read_config(path):
    """A config.pbtxt -> ModelConfig (the check Triton itself makes of its syntax and field names)."""
    from google.protobuf import text_format

    with open(path, encoding="utf-8") as f:
        return text_format.Parse(f.read(), _config_messages().ModelConfig())


def _copy(src, directory, name=None):
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(src, os.path.join(directory, name or os.path.basename(src)))


def _copy_export(model, directory, decoder_files):
    """The manifest and entropy tables of `model` (+ the decoder files named) into `directory`."""
    for name in MODEL_FILES + tuple(decoder_files):
        _copy(os.path.join(model.export_dir(), name), directory)


def _copy_decoder_engine(model, directory, name=None):
    """The checked decoder engine of an engine directory and its sidecar into `directory` (as `name`)."""
    engine, _ = checked_engine(model, "decoder")
    _copy(engine, directory, name)
    _copy(sidecar_path(engine), directory, name and sidecar_path(name))


def _decoder_onnx_files(model):
    return sorted(set(v["decoder"] for v in model.manifest()["variants"].values()))


def _check(models, synthesis, max_batch):
    if synthesis not in SYNTHESIS_MODES:
        raise UsageError("synthesis must be one of {}".format(", ".join(SYNTHESIS_MODES)))
    names, fingerprints = {}, {}
    for model in models:
        name = model.name
        if name in names or model.fingerprint in fingerprints:
            raise UsageError("{} and {} {}: serve each model once, under its own name".format(
                names.get(name, fingerprints.get(model.fingerprint)).label, model.label,
                "are the same model" if model.fingerprint in fingerprints else "share the name " + name))
        names[name], fingerprints[model.fingerprint] = model, model
        if synthesis == "tensorrt" and model.kind != "engine":
            raise UsageError("{}: --synthesis tensorrt needs an engine directory (roi-trt build)".format(model.label))
        if model.kind == "engine" and synthesis in ("tensorrt", "inprocess"):
            _, sidecar = checked_engine(model, "decoder")
            engine_batch = sidecar["profile"]["max"][0]
            if synthesis == "tensorrt" and max_batch > engine_batch:
                raise UsageError("{}: its decoder engine takes batches up to {}, not --max-batch {} (rebuild with "
                                 "a larger --max profile)".format(model.label, engine_batch, max_batch))
    return names


def write_repository(models, output, synthesis="inprocess", instances=1, max_batch=8, device="cpu",
                     queue_delay_us=2000, limits=DEFAULT_LIMITS, sink_dir=None, sink_callback=None, threads=None,
                     force=False):
    """Write the model repository for `models` (anything store.resolve takes) to `output`; -> its path.

    It is assembled in a temporary directory beside `output` and moved into place whole; an existing
    `output` is replaced only with `force`, and only if this command wrote it.
    """
    pb = _config_messages()
    resolved = [resolve(m) for m in models]
    if not resolved:
        raise UsageError("name at least one MODEL to serve")
    names = _check(resolved, synthesis, max_batch)

    def replaceable(path):
        if os.path.isdir(path) and not os.listdir(path):
            return
        if not force:
            raise UsageError("{} exists (--force replaces a repository this command wrote)".format(path))
        if not is_repository(path):
            raise UsageError("{} is not a repository written by roi-trt serve repo: refusing to replace it".format(path))

    with replacing_dir(output, replaceable) as work:
        _assemble(pb, work, names, synthesis, instances, max_batch, device, queue_delay_us, limits, sink_dir,
                  sink_callback, threads)
    return output


def _assemble(pb, root, names, synthesis, instances, max_batch, device, queue_delay_us, limits, sink_dir,
              sink_callback, threads):
    decode_dir = os.path.join(root, DECODE_MODEL)
    version = os.path.join(decode_dir, "1")
    os.makedirs(version)
    backend = "onnxruntime"
    served = []
    for name, model in sorted(names.items()):
        export = os.path.join("models", name)
        entry = {"name": name, "export": export, "label": model.label, "N": model.N, "M": model.M,
                 "fingerprint": model.fingerprint, "synthesis": None}
        if synthesis == "inprocess":
            if model.kind == "engine":
                backend = "tensorrt"
                _copy_export(model, os.path.join(version, export), ())
                _copy_decoder_engine(model, os.path.join(version, export))
            else:
                _copy_export(model, os.path.join(version, export), _decoder_onnx_files(model))
        else:
            _copy_export(model, os.path.join(version, export), ())
            entry["synthesis"] = _synthesis_model(pb, root, name, model, synthesis, instances, max_batch, device,
                                                  queue_delay_us, threads)
        served.append(entry)
    if synthesis == "inprocess" and backend == "tensorrt" and any(m.kind != "engine" for m in names.values()):
        raise UsageError("in-process synthesis runs one backend: give only engine directories or only exports")
    with open(os.path.join(version, SERVED_MODELS), "w", encoding="utf-8") as f:
        json.dump({"models": served}, f, indent=2, sort_keys=True)
    with open(os.path.join(version, "model.py"), "w", encoding="utf-8") as f:
        f.write(_SHIM.format("DecodeModel"))
    parameters = {"synthesis": "inprocess" if synthesis == "inprocess" else "bls", "backend": backend,
                  "threads": threads, "synthesis_max_batch": max_batch,
                  "max_stream_bytes": limits.max_stream_bytes, "max_pixels": limits.max_pixels,
                  "sink_dir": os.path.abspath(sink_dir) if sink_dir else None, "sink_callback": sink_callback}
    _write_config(decode_dir, decode_config(pb, synthesis, max_batch, instances, device, queue_delay_us, parameters))
    mark_repository(root)


def _synthesis_model(pb, root, name, model, kind, instances, max_batch, device, queue_delay_us, threads):
    """Write `<name>_synthesis` of the given kind; -> its model name."""
    synth = name + "_synthesis"
    version = os.path.join(root, synth, "1")
    os.makedirs(version)
    parameters = {}
    if kind == "onnxruntime":  # standard ops only: whatever ONNX Runtime the Triton release bundles runs it
        if STANDARD_OPS not in model.manifest()["variants"]:
            raise ModelError("{}: the export has no standard-ops decoder: export the model again".format(model.label))
        _copy(os.path.join(model.export_dir(), model.manifest()["variants"][STANDARD_OPS]["decoder"]), version,
              "model.onnx")
    elif kind == "tensorrt":
        _copy_decoder_engine(model, version, "model.plan")
    else:
        files = () if model.kind == "engine" else _decoder_onnx_files(model)
        _copy_export(model, os.path.join(version, "export"), files)
        if model.kind == "engine":
            _copy_decoder_engine(model, os.path.join(version, "export"))
        parameters = {"backend": "tensorrt" if model.kind == "engine" else "onnxruntime", "threads": threads}
        with open(os.path.join(version, "model.py"), "w", encoding="utf-8") as f:
            f.write(_SHIM.format("SynthesisModel"))
    _write_config(os.path.join(root, synth), synthesis_config(pb, synth, kind, model.N, max_batch, instances, device,
                                                             queue_delay_us, parameters))
    return synth
