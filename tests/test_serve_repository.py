"""`roi-trt serve repo`: the repositories for Triton's ONNX Runtime and TensorRT backends, which the bundled
server cannot run, checked against Triton's own ModelConfig schema; and the repository's file rules."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import onnx
import pytest

from roi_trt.artifacts import ENTROPY_TABLES, MANIFEST, REPOSITORY_MARKER, write_engine
from roi_trt.build.engine import make_sidecar
from roi_trt.errors import EngineError, UsageError
from roi_trt.serve.repository import read_config, write_repository
from roi_trt.store import DEMO_EXPORT, resolve


def _io(config):
    name = config.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"].enum_type.values_by_number
    return ([(t.name, name[t.data_type].name, list(t.dims)) for t in config.input],
            [(t.name, name[t.data_type].name, list(t.dims)) for t in config.output])


def _served(repo):
    with open(os.path.join(str(repo), "roi_decode", "1", "served_models.json")) as f:
        return json.load(f)["models"]


def test_inprocess_repository_holds_everything_roi_decode_needs(tmp_path, export_dir):
    repo = tmp_path / "repo"
    write_repository(["demo", export_dir], str(repo), instances=3, max_batch=6, device="gpu", queue_delay_us=500)
    config = read_config(str(repo / "roi_decode" / "config.pbtxt"))
    assert config.name == "roi_decode" and config.backend == "python" and config.max_batch_size == 6
    assert _io(config) == ([("STREAM", "TYPE_STRING", [1])],
                           [("IMAGE", "TYPE_UINT8", [-1, -1, 3]), ("SIZE", "TYPE_INT32", [2])])
    (group,) = config.instance_group
    assert group.count == 3 and group.KIND_GPU == group.kind
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.parameters["synthesis"].string_value == "inprocess"
    assert sorted(os.listdir(str(repo))) == [REPOSITORY_MARKER, "roi_decode"]  # no synthesis model
    served = _served(repo)
    assert [m["name"] for m in served] == ["demo", "export"]
    assert [m["fingerprint"] for m in served] == [resolve("demo").fingerprint, resolve(export_dir).fingerprint]
    for entry in served:
        files = os.listdir(str(repo / "roi_decode" / "1" / entry["export"]))
        assert sorted(files) == sorted([MANIFEST, ENTROPY_TABLES, "decoder.onnx", "decoder.std.onnx"])
    shim = (repo / "roi_decode" / "1" / "model.py").read_text()
    assert "from roi_trt.serve.triton_model import DecodeModel as TritonPythonModel" in shim


def test_onnxruntime_synthesis_model_for_tritons_onnx_backend(tmp_path):
    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo), synthesis="onnxruntime", instances=2, max_batch=4, device="gpu")
    decode = read_config(str(repo / "roi_decode" / "config.pbtxt"))
    assert decode.parameters["synthesis"].string_value == "bls"
    assert decode.instance_group[0].kind == decode.instance_group[0].KIND_CPU  # entropy decoding stays on the CPU
    assert sorted(os.listdir(str(repo / "roi_decode" / "1" / "models" / "demo"))) == [ENTROPY_TABLES, MANIFEST]
    config = read_config(str(repo / "demo_synthesis" / "config.pbtxt"))
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 4
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU and config.instance_group[0].count == 2
    assert _io(config) == ([("latent_hat", "TYPE_FP32", [128, -1, -1])], [("image", "TYPE_FP32", [3, -1, -1])])
    model = onnx.load(str(repo / "demo_synthesis" / "1" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["latent_hat"] and [o.name for o in model.graph.output] == ["image"]
    assert not model.functions and all(node.domain == "" for node in model.graph.node)  # any Triton's ONNX Runtime
    assert _served(repo)[0]["synthesis"] == "demo_synthesis"


def _engine_dir(tmp_path, max_batch=4, tamper=False):
    """An engine directory laid out as `roi-trt build` writes it. The bytes are not a TensorRT engine (none
    can be built here): only the repository's handling of the files and sidecar is under test."""
    from collections import namedtuple

    out = tmp_path / "engines"
    out.mkdir()
    for name in (MANIFEST, ENTROPY_TABLES):
        shutil.copy(os.path.join(DEMO_EXPORT, name), str(out / name))
    model = resolve("demo")
    gpu = namedtuple("Gpu", "name compute_capability total_memory")("NVIDIA H100", (9, 0), 80 << 30)
    compiled = namedtuple("Compiled", "input output profile flags")(
        "latent_hat", "image", ((1, 128, 1, 1), (1, 128, 32, 32), (max_batch, 128, 128, 128)), ("TF32",))
    sidecar = make_sidecar("decoder", 128, 2, model.fingerprint, "inline", "convtranspose", None, "10.9.0", gpu, "h100", compiled,
                           4 << 30, os.path.join(DEMO_EXPORT, "decoder.onnx"), 1 << 30)
    path = str(out / "decoder.inline.engine")
    write_engine(path, b"serialized engine bytes", sidecar)
    if tamper:
        with open(path, "ab") as f:
            f.write(b"!")
    return out


def test_tensorrt_synthesis_model_takes_the_engine_checked_against_its_sidecar(tmp_path):
    engines = _engine_dir(tmp_path)
    repo = tmp_path / "repo"
    write_repository([str(engines)], str(repo), synthesis="tensorrt", max_batch=4, device="gpu")
    name = _served(repo)[0]["synthesis"]
    config = read_config(str(repo / name / "config.pbtxt"))
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4
    assert _io(config) == ([("latent_hat", "TYPE_FP32", [128, -1, -1])], [("image", "TYPE_FP32", [3, -1, -1])])
    plan = (repo / name / "1" / "model.plan").read_bytes()
    assert hashlib.sha256(plan).hexdigest() == json.loads((repo / name / "1" / "model.plan.json").read_text())["engine_sha256"]
    with pytest.raises(UsageError, match="batches up to 4"):
        write_repository([str(engines)], str(tmp_path / "other"), synthesis="tensorrt", max_batch=8)
    with pytest.raises(UsageError, match="needs an engine directory"):
        write_repository(["demo"], str(tmp_path / "other"), synthesis="tensorrt")


def test_a_tampered_engine_is_not_packaged(tmp_path):
    engines = _engine_dir(tmp_path, tamper=True)
    with pytest.raises(EngineError, match="SHA-256"):
        write_repository([str(engines)], str(tmp_path / "repo"), synthesis="tensorrt")
    assert not os.path.exists(str(tmp_path / "repo"))


def test_repository_file_rules(tmp_path):
    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo))
    with pytest.raises(UsageError, match="exists"):
        write_repository(["demo"], str(repo))
    write_repository(["demo"], str(repo), synthesis="python", force=True)  # an earlier repository: replaced whole
    assert sorted(os.listdir(str(repo))) == [REPOSITORY_MARKER, "demo_synthesis", "roi_decode"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not a repository written by"):
        write_repository(["demo"], str(theirs), force=True)
    assert os.listdir(str(theirs)) == ["notes.txt"]
    with pytest.raises(UsageError, match="same model"):
        write_repository(["demo", DEMO_EXPORT], str(tmp_path / "twice"))
    assert sorted(os.listdir(str(tmp_path))) == ["repo", "theirs"]  # nothing half-written left behind


def test_serve_repo_cli(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "roi_trt.cli", "serve", "repo"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))

    ok = cli("demo", "-o", "r", "--max-batch", "2")
    assert ok.returncode == 0 and "roi-trt serve run r" in ok.stdout
    for args, pixels, stream_bytes in (((), 3840 * 2160, 3840 * 2160 // 2),
                                       (("--max-pixels", "1000000"), 10 ** 6, 500000),
                                       (("--max-pixels", "1000000", "--max-stream-bytes", "70000"), 10 ** 6, 70000)):
        assert cli("demo", "-o", "limits", "--force", *args).returncode == 0
        parameters = read_config(str(tmp_path / "limits" / "roi_decode" / "config.pbtxt")).parameters
        assert (parameters["max_pixels"].string_value, parameters["max_stream_bytes"].string_value) == (
            str(pixels), str(stream_bytes))
    beyond = cli("demo", "-o", "r4", "--max-pixels", str((1 << 26) + 1))
    assert beyond.returncode == 2 and "--max-pixels" in beyond.stderr
    both = cli("demo", "-o", "r2", "--sink-dir", "s", "--sink-callback", "m:f")
    assert both.returncode == 2 and both.stderr.strip().splitlines()[-1].startswith("Error: give --sink-dir or")
    missing = cli("nope-model", "-o", "r3")
    assert missing.returncode == 1 and "no such model" in missing.stderr and "Traceback" not in missing.stderr
