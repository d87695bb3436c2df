import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from helpers import make_model, save
from roi_trt.checkpoint import load_checkpoint
from roi_trt.cli import main
from roi_trt.errors import ExportError
from roi_trt.export import export_model, verify
from roi_trt.imageio import load_rgb, pad_to_multiple, to_nchw
from roi_trt.artifacts import EntropyTables, file_sha256, read_manifest
from roi_trt.model import PAPER_CONFIGS, fingerprint
from roi_trt.samples import sample_photos


@pytest.fixture(scope="module", params=PAPER_CONFIGS, ids=lambda nm: "%d-%d" % nm)
def exported(request, tmp_path_factory):
    N, M = request.param
    model = make_model(N, M, seed=N + M)
    ckpt = save({"state_dict": model.state_dict(), "N": N, "M": M}, tmp_path_factory.mktemp("ckpt") / f"{N}-{M}.pt")
    model, info = load_checkpoint(ckpt)
    out = str(tmp_path_factory.mktemp("export") / f"{N}-{M}")
    manifest = export_model(model, info, out)
    return model, out, manifest


def session(path, **kw):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"], **kw)


def test_manifest(exported):
    model, out, manifest = exported
    assert read_manifest(out) == manifest
    assert (manifest["N"], manifest["M"], manifest["downsampling"]) == (model.N, model.M, 2 ** (model.M + 2))
    assert manifest["opset"] == 13 and manifest["shape"] is None
    assert manifest["fingerprint"] == fingerprint(model) and len(manifest["fingerprint"]) == 64
    assert manifest["input"] == {"layout": "NCHW", "color": "RGB", "dtype": "float32", "range": [0.0, 1.0]}
    assert {"torch", "compressai", "onnx", "onnxruntime", "roi_trt"} <= set(manifest["tools"])
    for name, digest in manifest["sha256"].items():
        assert file_sha256(os.path.join(out, name)) == digest
    assert sorted(manifest["sha256"]) == sorted(
        ["encoder.onnx", "decoder.onnx", "encoder.std.onnx", "decoder.std.onnx", "entropy.npz"])
    assert manifest["variants"]["custom-op"] == {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    assert len(manifest["verification"]) == 4
    for row in manifest["verification"]:
        # a model of ordinary gain: ONNX Runtime within the absolute floor of float64, as float32 PyTorch is
        assert row["latent_max_abs_diff"] <= 1e-4 and row["image_max_abs_diff"] <= 1e-4
        assert 0 < row["torch_fp32_latent_max_abs_diff"] <= 1e-4 and row["symbol_agreement"] >= 0.9999


def test_gdn1_is_one_custom_node_per_layer(exported):
    model, out, _ = exported
    for name, inverse in (("encoder.onnx", 0), ("decoder.onnx", 1)):
        proto = onnx.load(os.path.join(out, name))
        gdn = [n for n in proto.graph.node if n.op_type == "GDN1"]
        assert len(gdn) == model.M + 1
        inits = {i.name: i for i in proto.graph.initializer}
        for node in gdn:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert node.domain == "roi_trt"
            assert attrs == {"inverse": inverse, "plugin_version": b"1", "plugin_namespace": b"roi_trt"}
            assert list(inits[node.input[1]].dims) == [model.N, model.N]
            assert list(inits[node.input[2]].dims) == [model.N]
        assert [(f.domain, f.name) for f in proto.functions] == [("roi_trt", "GDN1")]


def test_gdn1_carries_effective_parameters(exported):
    model, out, _ = exported
    proto = onnx.load(os.path.join(out, "encoder.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    gdn = model._encoder.encoder[1]
    beta = gdn.beta_reparam(gdn.beta).detach().numpy()
    gamma = gdn.gamma_reparam(gdn.gamma).detach().numpy()
    np.testing.assert_array_equal(inits["encoder.1.beta"], beta)
    np.testing.assert_array_equal(inits["encoder.1.gamma"], gamma)
    assert not np.allclose(inits["encoder.1.beta"], gdn.beta.detach().numpy())  # not the stored values


def test_standard_ops_variant(exported):
    _, out, _ = exported
    for name in ("encoder.std.onnx", "decoder.std.onnx"):
        proto = onnx.load(os.path.join(out, name))
        assert proto.ir_version == 7 and not proto.functions
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13)]
        assert {n.op_type for n in proto.graph.node} <= {
            "Conv", "ConvTranspose", "Unsqueeze", "Concat", "Shape", "Slice", "Reshape", "Abs", "Mul", "Reciprocal", "Sigmoid"}


def test_shape_inference_keeps_symbolic_dims(exported):
    model, out, _ = exported
    proto = onnx.shape_inference.infer_shapes(onnx.load(os.path.join(out, "encoder.onnx")), strict_mode=True)
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", model.N, "latent_height", "latent_width"]
    typed = {v.name for v in proto.graph.value_info}
    gdn_outputs = [n.output[0] for n in proto.graph.node if n.op_type == "GDN1"]
    assert set(gdn_outputs) <= typed  # shapes flow through the custom op


def test_onnxruntime_matches_torch_on_odd_size(exported):
    """333x517 is padded (edge replication) to multiples of 2^(M+2), decoded, and cropped back."""
    model, out, manifest = exported
    rgb, _ = load_rgb(sample_photos()[0])
    x = to_nchw(rgb[:333, :517])
    padded = pad_to_multiple(x, manifest["downsampling"])
    assert padded.shape[-2] % manifest["downsampling"] == 0 and padded.shape[-1] % manifest["downsampling"] == 0
    medians = model._bottleneck.quantiles[:, 0, 1].detach().numpy().reshape(1, -1, 1, 1)
    with torch.no_grad():
        y_ref = model._encoder(torch.from_numpy(padded)).numpy()
    for suffix in ("", ".std"):
        y = session(os.path.join(out, f"encoder{suffix}.onnx")).run(None, {"image": padded})[0]
        assert np.abs(y - y_ref).max() <= 1e-4
        assert np.mean(np.rint(y - medians) == np.rint(y_ref - medians)) >= 0.9999
        y_hat = (np.rint(y - medians) + medians).astype(np.float32)
        x_hat = session(os.path.join(out, f"decoder{suffix}.onnx")).run(None, {"latent_hat": y_hat})[0]
        assert x_hat.shape == padded.shape
        assert x_hat[..., :333, :517].shape == x.shape


def test_onnxruntime_logs_no_warnings(exported, capfd):
    _, out, _ = exported
    options = ort.SessionOptions()
    options.log_severity_level = 1  # warnings and above
    s = session(os.path.join(out, "encoder.onnx"), sess_options=options)
    s.run(None, {"image": np.random.rand(2, 3, 96, 160).astype(np.float32)})
    err = capfd.readouterr().err
    assert "[W:" not in err and "[E:" not in err, err


def test_entropy_tables_match_bottleneck(exported):
    model, out, _ = exported
    tables = EntropyTables.load(os.path.join(out, "entropy.npz"))
    eb = model._bottleneck
    np.testing.assert_array_equal(tables.quantized_cdf, eb._quantized_cdf.numpy())
    np.testing.assert_array_equal(tables.cdf_length, eb._cdf_length.numpy())
    np.testing.assert_array_equal(tables.offset, eb._offset.numpy())
    np.testing.assert_array_equal(tables.medians, eb.quantiles[:, 0, 1].detach().numpy())


def test_verification_detects_a_wrong_export(exported):
    model, out, _ = exported
    verify(model, out)
    with torch.no_grad():
        model._encoder.encoder[0].bias.add_(1e-2)
    try:
        with pytest.raises(ExportError, match="verification failed"):
            verify(model, out)
    finally:
        with torch.no_grad():
            model._encoder.encoder[0].bias.sub_(1e-2)


def test_fixed_shape_and_opset(tmp_path):
    model = make_model(128, 2)
    path = save({"state_dict": model.state_dict()}, tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["export", path, "-o", str(tmp_path / "e"), "--fixed-shape", "1x256x384", "--opset", "17"])
    assert result.exit_code == 0, result.output
    assert "symbols equal 100.0000%" in result.output and "(PyTorch fp32 " in result.output
    proto = onnx.load(str(tmp_path / "e" / "decoder.std.onnx"))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 128, 16, 24]
    assert proto.opset_import[0].version == 17
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["shape"] == {"batch": 1, "height": 256, "width": 384}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fixed-shape", "1x250x384"], "multiples of 16"),
        (["--fixed-shape", "banana"], "BATCHxHEIGHTxWIDTH"),
        (["--opset", "11"], "opset 11 not supported"),
    ],
)
def test_bad_export_options(tmp_path, args, message):
    path = save({"state_dict": make_model(128, 2).state_dict()}, tmp_path / "m.pt")
    out = tmp_path / "e"
    result = CliRunner().invoke(main, ["export", path, "-o", str(out)] + args)
    assert result.exit_code != 0 and message in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]  # no staging left behind


def test_never_replaces_a_directory_that_is_not_an_export(tmp_path):
    path = save({"state_dict": make_model(128, 2).state_dict()}, tmp_path / "m.pt")
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["export", path, "-o", str(precious)])
    assert result.exit_code == 1 and "is not an earlier export" in result.output
    assert (precious / "notes.txt").read_text() == "keep me"
    again = tmp_path / "e"
    for _ in range(2):  # an earlier export is replaced
        assert CliRunner().invoke(main, ["export", path, "-o", str(again)]).exit_code == 0
    assert sorted(p.name for p in again.iterdir()) == sorted(
        ["encoder.onnx", "decoder.onnx", "encoder.std.onnx", "decoder.std.onnx", "entropy.npz", "manifest.json"])
    other = save({"state_dict": make_model(128, 2, seed=7).state_dict()}, tmp_path / "other.pt")
    refused = CliRunner().invoke(main, ["export", other, "-o", str(again)])  # another model's streams decode with it
    assert refused.exit_code == 1 and "holds the export of other weights" in refused.output, refused.output
    assert CliRunner().invoke(main, ["export", other, "-o", str(again), "--force"]).exit_code == 0
