"""Engine directories as models, `roi-trt build` and `roi-trt doctor` where no GPU exists (as here): every
path says what is missing in one line, and nothing reaches TensorRT without a CUDA device."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from roi_trt.cli import main
from roi_trt.codec import open_codec
from roi_trt.cuda import detect
from roi_trt.errors import ModelError, RoiTrtError
from roi_trt.store import resolve

no_gpu = pytest.mark.skipif(bool(detect().devices), reason="a CUDA device is present: these check the no-GPU paths")


@pytest.fixture()
def engine_dir(export_dir, tmp_path):
    """What `roi-trt build --part encoder` leaves: the export's manifest and tables beside an engine + sidecar."""
    out = tmp_path / "engines"
    out.mkdir()
    for name in ("manifest.json", "entropy.npz"):
        shutil.copy(os.path.join(export_dir, name), str(out / name))
    (out / "encoder.inline.engine").write_bytes(b"not really an engine")
    (out / "encoder.inline.engine.json").write_text(json.dumps({"format": "roi-trt-engine"}))
    return str(out)


def test_an_engine_directory_is_a_model(engine_dir, export_dir):
    model = resolve(engine_dir)
    assert model.kind == "engine" and model.fingerprint == resolve(export_dir).fingerprint
    assert model.engine_path("encoder") == os.path.join(engine_dir, "encoder.inline.engine")
    with pytest.raises(ModelError, match="no decoder engine"):
        model.engine_path("decoder")
    with pytest.raises(ModelError, match="holds no TensorRT engines"):
        resolve(export_dir).engine_path("encoder")


@no_gpu
def test_engines_are_not_touched_without_a_gpu(engine_dir, photo):
    with pytest.raises(RoiTrtError, match="no CUDA device"):
        open_codec(engine_dir, parts=("encoder",))  # auto picks tensorrt for an engine directory
    code = "import sys, roi_trt.cli, roi_trt.backends.tensorrt.runner, roi_trt.build.engine; print('tensorrt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True)
    assert out.stdout.strip() == "False"


@no_gpu
def test_doctor_reports_what_each_target_needs():
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "CUDA devices:" in result.output and "no CUDA device" in result.output
    for target in ("nano", "orin", "a100", "ada", "h100", "blackwell"):
        assert "target {}:".format(target) in result.output
    assert "needs a GPU of compute capability 5.3, TensorRT 8.0 to 8.x" in result.output
    selftest = CliRunner().invoke(main, ["doctor", "--selftest"])
    assert selftest.exit_code == 1
    assert selftest.output.splitlines()[-1].startswith("selftest stopped before the GPU part: no CUDA device")


def test_build_says_what_is_missing(tmp_path):
    result = CliRunner().invoke(main, ["build", "-o", str(tmp_path / "e")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    if importlib.util.find_spec("tensorrt") is None:
        assert "needs tensorrt" in result.output and "pip install 'roi-trt[tensorrt]'" in result.output
    else:
        assert "no CUDA device" in result.output
    assert not (tmp_path / "e").exists()
