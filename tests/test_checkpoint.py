import pickle
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from helpers import make_model, old_bottleneck_names, save
from roi_trt.checkpoint import load_checkpoint, save_checkpoint
from roi_trt.cli import main
from roi_trt.errors import CheckpointError


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    "layout",
    ["reference", "reference-old-keys", "lightning", "lightning-in-dict", "bare"],
)
def test_loads_every_layout(tmp_path, layout, legacy):
    model = make_model(128, 1)
    sd = model.state_dict()
    if layout == "reference":
        obj = {"state_dict": sd, "N": 128, "M": 1}
    elif layout == "reference-old-keys":
        obj = {"state_dict": old_bottleneck_names(sd), "N": 128, "M": 1}
    elif layout == "lightning":
        obj = {"autoencoder." + k: v for k, v in sd.items()}
    elif layout == "lightning-in-dict":
        obj = {"state_dict": {"autoencoder." + k: v for k, v in sd.items()}}
    else:
        obj = dict(sd)
    loaded, info = load_checkpoint(save(obj, tmp_path / "c.pt", legacy))
    assert_same_weights(model, loaded)
    assert (info.N, info.M) == (128, 1)
    assert info.serialization == ("legacy" if legacy else "zip")
    assert info.nm_source == ("file" if layout.startswith("reference") else "inferred")
    assert info.format.startswith("lightning") == layout.startswith("lightning")


def test_builds_entropy_tables_when_absent(tmp_path):
    model = make_model(128, 2)
    sd = {k: v for k, v in model.state_dict().items()}
    for name in ("_quantized_cdf", "_offset", "_cdf_length"):
        sd["_bottleneck." + name] = torch.zeros(0, dtype=torch.int32)
    loaded, _ = load_checkpoint(save({"state_dict": sd, "N": 128, "M": 2}, tmp_path / "c.pt"))
    assert torch.equal(loaded._bottleneck._quantized_cdf, model._bottleneck._quantized_cdf)


def test_save_roundtrip_is_reference_format(tmp_path):
    model = make_model(128, 2)
    save_checkpoint(model, tmp_path / "out.pt", config={"lr": 1e-4})
    raw = torch.load(str(tmp_path / "out.pt"), weights_only=True)
    assert set(raw) == {"state_dict", "N", "M", "config"}
    assert_same_weights(model, load_checkpoint(tmp_path / "out.pt")[0])


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    sd = dict(make_model(128, 2).state_dict())
    del sd["_decoder.decoder.2.weight"]
    sd["_encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(save({"state_dict": sd}, tmp_path / "c.pt"))
    assert "missing tensors: _decoder.decoder.2.weight" in str(err.value)
    assert "unexpected tensors: _encoder.extra.weight" in str(err.value)


def test_file_nm_contradicting_weights(tmp_path):
    sd = make_model(128, 2).state_dict()
    with pytest.raises(CheckpointError, match="file says N=256, M=2 but the weights are N=128, M=2"):
        load_checkpoint(save({"state_dict": sd, "N": 256, "M": 2}, tmp_path / "c.pt"))


def test_mixed_prefixes_rejected(tmp_path):
    sd = make_model(128, 2).state_dict()
    obj = {("a." if i % 2 else "b.") + k: v for i, (k, v) in enumerate(sd.items())}
    with pytest.raises(CheckpointError, match="several prefixes"):
        load_checkpoint(save(obj, tmp_path / "c.pt"))


class Opaque:
    pass


def test_pickled_objects_need_trust(tmp_path):
    path = tmp_path / "c.pt"
    sd = make_model(128, 2).state_dict()
    torch.save({"state_dict": sd, "N": 128, "M": 2, "hparams": Opaque()}, str(path))
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_checkpoint(path)
    model, _ = load_checkpoint(path, trust=True)
    assert model.N == 128


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world\n", b"\x89PNG\r\n\x1a\n" + bytes(100), pickle.dumps([1, 2, 3])],
    ids=["empty", "text", "png", "pickled-list"],
)
def test_foreign_files_give_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def test_info_cli(tmp_path):
    path = save({"autoencoder." + k: v for k, v in make_model(256, 1).state_dict().items()}, tmp_path / "256-1.pt", True)
    result = subprocess.run(
        [sys.executable, "-m", "roi_trt.cli", "info", path], capture_output=True, text=True, check=True
    )
    out = result.stdout
    assert "lightning (prefix 'autoencoder.'), legacy serialization" in out
    assert "N, M:            256, 1 (inferred)" in out
    assert "downsampling:    8x" in out
    assert "latent channels: 256" in out
    assert "parameters (total):" in out
    assert result.stderr == ""
