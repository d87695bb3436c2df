"""The shipped demo checkpoint and the README demo, end to end."""

import os

import numpy as np
from click.testing import CliRunner
from PIL import Image

from roi_trt.cli import main
from roi_trt.cli.models import _graph_rules
from roi_trt.demo import run_demo
from roi_trt.store import DEMO_CHECKPOINT
from roi_trt.samples import sample_photos


def test_demo_checkpoint_is_small_and_loads():
    assert os.path.getsize(DEMO_CHECKPOINT) < 6e6
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert "N, M:            128, 2 (file)" in result.output and "reference, zip serialization" in result.output


def test_info_says_which_graph_each_runtime_runs():
    result = CliRunner().invoke(main, ["info"])
    assert "ONNX Runtime:    custom-op graph from 1.16, standard-ops graph before 1.16\n" in result.output
    assert "TensorRT:        custom-op graph for any version\n" in result.output
    rules = [["2.0", "a"], ["1.16", "b"], ["0", "c"]]
    assert _graph_rules(rules) == "a graph from 2.0, b graph from 1.16 to before 2.0, c graph before 1.16"


def test_readme_demo(tmp_path):
    rows = run_demo(str(tmp_path / "demo"), echo=lambda line: None)
    assert [r["image"] for r in rows] == [os.path.splitext(os.path.basename(p))[0] for p in sample_photos()]
    for row in rows:
        # what the README states for the shipped checkpoint
        assert 0.04 < row["bpp"] < 0.1 and 20 < row["psnr_db"] < 26
        side = Image.open(str(tmp_path / "demo" / "{}.side_by_side.png".format(row["image"])))
        assert side.size == (2 * row["width"] + 8, row["height"])
        decoded = np.asarray(Image.open(str(tmp_path / "demo" / "{}.decoded.png".format(row["image"]))))
        assert decoded.shape == (row["height"], row["width"], 3)
        assert os.path.getsize(str(tmp_path / "demo" / "{}.roi".format(row["image"]))) == row["bytes"]
