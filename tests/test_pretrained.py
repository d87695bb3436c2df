"""`-m paper:NAME` end to end against a local mirror of the authors' release (never the internet): real
checkpoints in their layouts (Lightning-prefixed zip, legacy `-nanocompat`), downloaded, verified,
exported on first use and used by the commands. Small random models keep it fast."""

import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from helpers import make_model, save
from paper_mirror import Mirror
from roi_trt import pretrained
from roi_trt.cli import main
from roi_trt.artifacts import read_manifest
from roi_trt.store import resolve

N, M = 128, 2  # the configuration the release names: roi-trt checks a paper model is what its name says


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """{file name: bytes} as the authors publish them: every key under the Lightning module's prefix."""
    folder = tmp_path_factory.mktemp("release")
    weights = {"autoencoder." + k: v for k, v in make_model(N, M, seed=11).state_dict().items()}
    files = {}
    for name, legacy in (("128-2.pt", False), ("128-2-nanocompat.pt", True)):
        with open(save(weights, folder / name, legacy), "rb") as f:
            files[name] = f.read()
    return files


@pytest.fixture()
def mirror(release, monkeypatch):
    with Mirror(release) as server:
        monkeypatch.setenv(pretrained.URL_ENV, server.url)
        yield server


def test_encode_with_a_released_model_downloads_exports_and_uses_it(mirror, photo, tmp_path):
    image, stream, decoded = str(tmp_path / "photo.png"), str(tmp_path / "photo.roi"), str(tmp_path / "photo.decoded.png")
    Image.fromarray(photo[:256, :256]).save(image)
    result = CliRunner().invoke(main, ["encode", image, "-m", "paper:128-2", "-o", stream])
    assert result.exit_code == 0, result.output
    model = resolve("paper:128-2")
    assert model.checkpoint == pretrained.cached_path("128-2") and model.has_export()  # the verified export, reused
    manifest = read_manifest(model.export_dir())
    assert (manifest["N"], manifest["M"]) == (N, M) and manifest["verification"]
    assert model.export_dir().startswith(os.path.join(os.environ["ROI_TRT_CACHE"], "exports", "128-2-"))
    result = CliRunner().invoke(main, ["decode", stream, "-m", "paper:128-2", "-o", decoded])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(decoded)).shape == (256, 256, 3)
    assert mirror.downloads("128-2.pt") == [None]  # once
    listing = CliRunner().invoke(main, ["models"]).output
    assert [line for line in listing.splitlines() if line.startswith("paper:128-2 ")][0].endswith("verified, exported")


def test_the_nanocompat_file_loads_and_exports_on_pull(mirror, release):
    result = CliRunner().invoke(main, ["models", "pull", "paper:128-2-nanocompat", "--export"])
    assert result.exit_code == 0, result.output
    assert "exported to " + os.path.join(os.environ["ROI_TRT_CACHE"], "exports", "128-2-nanocompat-") in result.output
    result = CliRunner().invoke(main, ["info", "paper:128-2-nanocompat"])
    assert result.exit_code == 0, result.output
    assert "lightning (prefix 'autoencoder.'), legacy serialization" in result.output
    assert "model:           paper:128-2-nanocompat (checkpoint)" in result.output


def test_export_command_takes_a_released_name(mirror, tmp_path):
    out = str(tmp_path / "export")
    result = CliRunner().invoke(main, ["export", "paper:128-2", "-o", out])
    assert result.exit_code == 0, result.output
    assert read_manifest(out)["fingerprint"] == resolve("paper:128-2").fingerprint


def test_a_file_that_is_not_the_named_configuration_is_refused(tmp_path, monkeypatch):
    """A checkpoint published (or imported) under 128-2.pt that holds another configuration: refused by name."""
    weights = {"autoencoder." + k: v for k, v in make_model(8, 2, seed=12).state_dict().items()}
    with open(save(weights, tmp_path / "128-2.pt", False), "rb") as f:
        files = {"128-2.pt": f.read()}
    with Mirror(files) as server:
        monkeypatch.setenv(pretrained.URL_ENV, server.url)
        result = CliRunner().invoke(main, ["info", "paper:128-2"])
    assert result.exit_code == 1
    assert "paper:128-2 is a (8, 2) model, not (128, 2) as its name says" in result.output, result.output
