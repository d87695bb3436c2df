"""The latency harness on the camera side: ONNX Runtime + JPEG without torch (what a Jetson Nano runs)."""

import csv

from click.testing import CliRunner

from roi_trt.cli import main


def test_latency_without_torch(export_dir, photo, tmp_path):
    from PIL import Image

    image = str(tmp_path / "photo.png")
    Image.fromarray(photo[:200, :300]).save(image)
    out = str(tmp_path / "nano.csv")
    result = CliRunner().invoke(main, ["bench", "latency", image, "--models", export_dir, "--backends", "onnxruntime",
                                       "--codecs", "jpeg", "--qualities", "1,10", "--repeats", "3", "--size", "64", "-o", out])
    assert result.exit_code == 0, result.output
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["config"], r["stage"]) for r in rows] == [
        ("roi-codec", "128-2", "encode"), ("roi-codec", "128-2", "decode"),
        ("jpeg", "q1", "encode"), ("jpeg", "q1", "decode"), ("jpeg", "q10", "encode"), ("jpeg", "q10", "decode"),
    ]
    assert all(r["n"] == "3" and r["images"] == "1" and r["complete"] == "1" for r in rows)
    report = CliRunner().invoke(main, ["bench", "report", out])
    assert report.exit_code == 0 and "JPEG q10" in report.output
