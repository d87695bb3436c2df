"""`roi-trt doctor --selftest --report DIR`: everything it does before it needs a GPU, run for real (the model,
ONNX Runtime's reference results, the checks' arithmetic, the CSV `bench report` reads), and its one-line
stop where there is no CUDA device or no TensorRT. The GPU part is in `pytest -m gpu` (test_tensorrt_gpu.py)."""

import csv
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from roi_trt import cuda, selftest
from roi_trt.bench.latency import read_csv
from roi_trt.bench.methods import RoiCodecMethod
from roi_trt.cli import main
from roi_trt.codec import open_codec
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos
from roi_trt.store import resolve

NO_GPU = not cuda.detect().devices


def test_every_engine_set_is_planned():
    assert selftest.engine_sets() == [("inline", "convtranspose"), ("inline", "polyphase"),
                                      ("plugin", "convtranspose"), ("plugin", "polyphase")]


@pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present: the self-test runs whole (pytest -m gpu)")
def test_without_a_gpu_it_stops_in_one_line_after_the_cpu_part(tmp_path):
    report = tmp_path / "report"
    result = CliRunner().invoke(main, ["doctor", "--selftest", "--report", str(report)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("selftest stopped before the GPU part: no CUDA device: ")
    assert any(line.startswith("reference: ONNX Runtime on the CPU, demo (128, 2)") for line in lines)
    with open(str(report / "selftest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["check"] == "stopped" and rows[0]["passed"] == "0"
    assert rows[0]["error"].startswith("no CUDA device") and rows[0]["cpu"] and rows[0]["roi_trt"]
    assert list(rows[0])[:len(selftest.FIELDS)] == list(selftest.FIELDS)
    assert (report / "selftest.txt").read_text().splitlines() == lines[-3:]
    bench = CliRunner().invoke(main, ["bench", "report", str(report / "selftest.csv")])
    assert bench.exit_code == 1 and "no encode or decode latency rows" in bench.output
    again = CliRunner().invoke(main, ["doctor", "--selftest", "--report", str(report)])
    assert again.exit_code == 2 and again.output.strip().endswith("selftest.csv exists (--force replaces it)")
    assert CliRunner().invoke(main, ["doctor", "--selftest", "--report", str(report), "--force"]).exit_code == 1


def test_a_tensorrt_home_without_tensorrt_is_named_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ROI_TRT_TENSORRT_HOME", str(tmp_path))  # what --tensorrt-home sets; restored after the test
    result = CliRunner().invoke(main, ["doctor", "--selftest", "--tensorrt-home", str(tmp_path)])
    assert result.exit_code == 1
    stop = result.output.splitlines()[-1]
    assert stop.startswith("selftest stopped before the GPU part: ")
    assert "TensorRT home {}: no `tensorrt` package for Python".format(tmp_path) in stop


def test_parity_of_a_codec_with_itself_is_exact_and_of_another_model_is_not():
    model = resolve("demo")
    photo = load_rgb(sample_photos()[0])[0]
    frame, latent, y_hat, image, tables = selftest.references(model, photo)
    assert latent.shape == (128, 32, 32) and image.shape == (1, 3, 512, 512)
    with open_codec(model, backend="onnxruntime", device="cpu") as same:
        row, passed = selftest.parity(same, frame, latent, y_hat, image, tables)
    assert passed and row == {"latent_max_abs_diff": 0.0, "symbol_agreement": 1.0, "image_max_abs_diff": 0.0}
    with open_codec(model, backend="torch") as other:  # PyTorch float32: within the tolerances too
        row, passed = selftest.parity(other, frame, latent, y_hat, image, tables)
    assert passed and 0 < row["latent_max_abs_diff"] < selftest.LATENT_TOLERANCE
    row, passed = selftest.parity(_Shifted(model), frame, latent, y_hat, image, tables)
    assert not passed and row["image_max_abs_diff"] == pytest.approx(0.01, abs=1e-6)


class _Shifted(object):
    """A codec whose decoded images are off by 0.01: what a wrong engine would give."""

    def __init__(self, model):
        self.codec = open_codec(model, backend="onnxruntime", device="cpu")

    def analyze(self, frame):
        return self.codec.analyze(frame)

    def synthesize(self, y_hat):
        image, seconds = self.codec.synthesize(y_hat)
        return image + 0.01, seconds


def test_end_to_end_rows_follow_the_latency_protocol_and_bench_report_reads_them(tmp_path):
    with open_codec("demo", backend="onnxruntime", device="cpu") as codec:
        rows = selftest.end_to_end(codec, sample_photos()[:1], repeats=2)
        label = RoiCodecMethod(codec).backend
    assert [r["stage"] for r in rows] == ["encode", "decode"] and all(r["n"] == 2 for r in rows)
    report = selftest.Report(str(tmp_path), selftest.environment(cuda.detect(), None, 0), log=lambda line: None)
    for row in rows:
        report.add(dict(row, method="roi-codec", config="128-2", check="end-to-end"))
    report.add({"method": "roi-codec", "config": "128-2", "check": "parity", "latent_max_abs_diff": 0.0})
    timing = read_csv(str(tmp_path / selftest.CSV))
    assert [r["stage"] for r in timing] == ["encode", "decode"] and timing[0]["backend"] == label
    result = CliRunner().invoke(main, ["bench", "report", str(tmp_path / selftest.CSV), "--compare", "paper"])
    assert result.exit_code == 0, result.output
    assert "(128, 2) onnxruntime" in result.output and "ours/paper" in result.output


def test_the_gdn1_reference_is_compressais_gdn1():
    from compressai.layers import GDN1

    from roi_trt.model import effective_gdn_params

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 5, 7)).astype(np.float32)
    for inverse in (False, True):
        layer = GDN1(16, inverse=inverse)
        with torch.no_grad():
            layer.gamma.add_(torch.from_numpy(rng.random((16, 16)).astype(np.float32)) * 0.05)
            expected = layer(torch.from_numpy(x)).numpy()
        gamma, beta = (v.numpy() for v in effective_gdn_params(layer))
        assert np.abs(selftest.gdn1_reference(x, gamma, beta, inverse) - expected).max() < 1e-5


def test_the_gdn1_layer_alone_is_one_plugin_node_in_tensorrts_form():
    import onnx

    from roi_trt.onnx_rewrite import is_gdn1

    data, gamma, beta = selftest.gdn1_layer_model(32, inverse=1)
    model = onnx.load_from_string(data)
    (node,) = model.graph.node
    assert is_gdn1(node) and not model.functions and model.ir_version == 7
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"inverse": 1, "plugin_version": b"1", "plugin_namespace": b"roi_trt"}
    assert gamma.shape == (32, 32) and gamma.min() >= 0 and beta.min() >= 1
