"""The model store, the shipped demo export, float64 export verification and the torch-free ONNX rewrites."""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from helpers import make_model, save
from roi_trt.checkpoint import load_checkpoint
from roi_trt.cli import main
from roi_trt.codec import open_codec
from roi_trt.errors import ExportError, ModelError
from roi_trt.export import export_model, verify
from roi_trt.artifacts import file_sha256, read_manifest
from roi_trt.model import fingerprint
from roi_trt.onnx_rewrite import (is_gdn1, plugin_model, polyphase_deconv_model, standard_ops_model,
                                  transposed_deconv_model)
from roi_trt.store import DEMO_CHECKPOINT, DEMO_EXPORT, resolve


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save({"state_dict": make_model(128, 1, seed=5).state_dict()}, tmp_path_factory.mktemp("ckpt") / "m.pt")


def test_resolve_every_kind(checkpoint, export_dir, tmp_path):
    demo = resolve()
    assert demo.kind == "demo" and resolve("demo").export_dir() == DEMO_EXPORT and demo.checkpoint == DEMO_CHECKPOINT
    assert (demo.N, demo.M, demo.downsampling) == (128, 2, 16) and demo._torch is None  # facts from the export
    assert resolve(export_dir).kind == "export" and resolve(export_dir).fingerprint == read_manifest(export_dir)["fingerprint"]
    random = resolve("128-1")
    assert random.kind == "random" and (random.N, random.M) == (128, 1)
    ckpt = resolve(checkpoint)
    assert ckpt.kind == "checkpoint" and not ckpt.has_export()
    for bad, message in ((str(tmp_path), "not an export or engine directory"), (str(tmp_path / "nope"), "no such model"),
                         ("1x2", "no such model")):
        with pytest.raises(ModelError, match=message):
            resolve(bad)


def test_checkpoint_is_exported_once_into_the_cache(checkpoint):
    first = resolve(checkpoint)
    out = first.export_dir()
    assert out.startswith(os.environ["ROI_TRT_CACHE"]) and read_manifest(out)["N"] == 128
    stamp = os.path.getmtime(os.path.join(out, "manifest.json"))
    again = resolve(checkpoint)
    assert again.has_export() and again.export_dir() == out and again._torch is None  # no torch load, no export
    assert os.path.getmtime(os.path.join(out, "manifest.json")) == stamp


FIRST_USE = """
import sys
import roi_trt.export
made = roi_trt.export.export_model
def counted(*args, **kwargs):
    print("exporting", flush=True)
    return made(*args, **kwargs)
roi_trt.export.export_model = counted
from roi_trt.store import resolve
print(resolve(sys.argv[1]).export_dir())
"""


def test_two_processes_using_a_checkpoint_first_export_it_once(checkpoint):
    """The second process waits for the first one's export and uses it: no second export, no race."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    users = [subprocess.Popen([sys.executable, "-c", FIRST_USE, str(checkpoint)], cwd=root, stdout=subprocess.PIPE,
                              universal_newlines=True) for _ in range(2)]
    outputs = [u.communicate(timeout=300)[0].split("\n") for u in users]
    assert [u.returncode for u in users] == [0, 0]
    assert sorted(lines.count("exporting") for lines in outputs) == [0, 1]
    out = outputs[0][-2]
    assert outputs[1][-2] == out and read_manifest(out)["N"] == 128
    assert sorted(os.listdir(os.path.dirname(out))) == [os.path.basename(out)]


def test_an_export_from_another_format_version_is_made_anew(checkpoint):
    out = resolve(checkpoint).export_dir()
    path = os.path.join(out, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["format_version"] = 1
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(ModelError, match="export the model again"):
        read_manifest(out)
    assert resolve(checkpoint).export_dir() == out and read_manifest(out)["format_version"] == 2


class Opaque(object):
    """Any class: torch.load(weights_only=True) refuses to unpickle it."""


def test_foreign_files_as_models_get_the_right_advice(tmp_path, photo):
    image = str(tmp_path / "photo.png")
    Image.fromarray(photo[:32, :32]).save(image)
    result = CliRunner().invoke(main, ["encode", image, "-m", image, "-o", str(tmp_path / "x.roi")])
    assert result.exit_code == 1 and "not a model" in result.output and "--trust-pickle" not in result.output
    pickled = save({"state_dict": make_model(128, 2).state_dict(), "note": Opaque()}, tmp_path / "p.pt")
    result = CliRunner().invoke(main, ["encode", image, "-m", pickled, "-o", str(tmp_path / "x.roi")])
    assert result.exit_code == 1 and "roi-trt export --trust-pickle" in result.output  # a command that has it


def test_fixed_shape_export_refuses_other_sizes_and_the_batch_goes_on(tmp_path, photo):
    model = make_model(128, 2, seed=9)
    out = str(tmp_path / "fixed")
    export_model(model, load_checkpoint(save({"state_dict": model.state_dict()}, tmp_path / "f.pt"))[1], out,
                 shape=(1, 64, 96))
    for name, size in (("fits.png", (64, 96)), ("other.png", (70, 96))):
        Image.fromarray(photo[: size[0], : size[1]]).save(str(tmp_path / name))
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "fits.png"), str(tmp_path / "other.png"), "-m", out,
                                       "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "encoded 1/2 files (1 failed" in result.output
    assert "fixed to encoder input 1x64x96" in result.output and "Traceback" not in result.output
    assert os.listdir(str(tmp_path / "out")) == ["fits.roi"]


def test_high_gain_model_exports_and_a_broken_graph_still_fails(tmp_path):
    """Float32 itself strays from float64 by ~6e-3 on this decoder; ONNX Runtime is judged against that."""
    model = make_model(128, 2, seed=3)
    with torch.no_grad():
        for layer in model._decoder.decoder:
            if isinstance(layer, torch.nn.ConvTranspose2d):
                layer.weight.mul_(12.0)
    info = load_checkpoint(save({"state_dict": model.state_dict()}, tmp_path / "gain.pt"))[1]
    manifest = export_model(model, info, str(tmp_path / "gain"))
    rows = manifest["verification"]
    assert min(r["image_max_abs_diff"] for r in rows) > 1e-4  # a fixed 1e-4 bound would refuse this valid model
    assert all(r["image_max_abs_diff"] <= r["image_tolerance"] < 8 * r["torch_fp32_image_max_abs_diff"] for r in rows)
    with torch.no_grad():
        model._decoder.decoder[-2].bias.add_(0.5)
    with pytest.raises(ExportError, match="image error"):
        verify(model, str(tmp_path / "gain"))


def test_shipped_demo_export_is_the_export_of_the_shipped_checkpoint(tmp_path):
    model, info = load_checkpoint(DEMO_CHECKPOINT)
    shipped = read_manifest(DEMO_EXPORT)
    assert shipped["fingerprint"] == fingerprint(model)
    fresh = export_model(model, info, str(tmp_path / "demo"))
    assert fresh["sha256"] == shipped["sha256"]  # the same ONNX and table bytes: re-export after any change
    for name, digest in shipped["sha256"].items():
        assert file_sha256(os.path.join(DEMO_EXPORT, name)) == digest


def test_demo_codec_on_torch_and_onnxruntime_interchange(photo):
    with open_codec("demo", backend="torch") as torch_codec, open_codec("demo") as ort_codec:
        stream, _ = torch_codec.encode(photo[:64, :64])
        a, _ = ort_codec.decode(stream)
        b, _ = torch_codec.decode(stream)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _run(proto, array):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_onnx_rewrites(part):
    proto = onnx.load(os.path.join(DEMO_EXPORT, part + ".onnx"))
    x = np.random.default_rng(0).random((1, 3, 64, 48) if part == "encoder" else (1, 128, 4, 3), dtype=np.float32)
    x = x if part == "encoder" else np.rint(x * 8 - 4).astype(np.float32)

    inlined = standard_ops_model(proto)
    onnx.checker.check_model(inlined, full_check=True)
    assert inlined.ir_version == 7 and not inlined.functions and not any(is_gdn1(n) for n in inlined.graph.node)
    assert [o.domain for o in inlined.opset_import] == [""]
    assert np.abs(_run(inlined, x) - _run(proto, x)).max() <= 1e-5

    plugin = plugin_model(proto)
    gdn = [n for n in plugin.graph.node if is_gdn1(n)]
    assert not plugin.functions and plugin.ir_version == 7 and len(gdn) == 3  # M + 1 layers, one node each
    inits = {t.name for t in plugin.graph.initializer}
    for node in gdn:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {"inverse": int(part == "decoder"), "plugin_version": b"1", "plugin_namespace": b"roi_trt"}
        assert node.input[1] in inits and node.input[2] in inits  # gamma, beta arrive as constant tensors


@pytest.mark.parametrize("latent_hw", [(5, 7), (1, 1), (3, 2)])
def test_polyphase_decoder_equals_pytorch_at_odd_sizes(latent_hw, tmp_path):
    """The exported (polyphase) decoder, both variants, against PyTorch float64 within the export tolerance,
    and against the ConvTranspose form."""
    import copy

    model, info = load_checkpoint(DEMO_CHECKPOINT)
    y = np.rint(np.random.default_rng(2).standard_normal((2, 128) + latent_hw) * 3).astype(np.float32)  # batch 2
    with torch.no_grad():
        x64 = copy.deepcopy(model).double()._decoder(torch.from_numpy(y).double()).numpy()
        x32 = model._decoder(torch.from_numpy(y)).numpy()
    tolerance = max(1e-4, 4 * float(np.abs(x32 - x64).max()))
    for name in ("decoder.onnx", "decoder.std.onnx"):
        proto = onnx.load(os.path.join(DEMO_EXPORT, name))
        weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
        transposed = sorted(weights[n.input[1]] for n in proto.graph.node if n.op_type == "ConvTranspose")
        # the M + 1 hidden layers in phases, each placed by a one-hot depthwise 2x2 ConvTranspose; the image layer as is
        assert transposed == [(128, 3, 5, 5)] + [(4 * 128, 1, 2, 2)] * 3
        assert sum(n.op_type == "Conv" and "/phase" in n.name for n in proto.graph.node) == 4 * 3
        out = _run(proto, y)
        assert out.shape == (2, 3, 16 * latent_hw[0], 16 * latent_hw[1])
        assert np.abs(out - x64).max() <= tolerance
    emitted = export_model(model, info, str(tmp_path / "t"), deconv="convtranspose")
    assert emitted["deconv"] == "convtranspose"
    transposed = onnx.load(str(tmp_path / "t" / "decoder.std.onnx"))
    weights = {t.name: tuple(t.dims) for t in transposed.graph.initializer}
    assert sorted(weights[n.input[1]] for n in transposed.graph.node if n.op_type == "ConvTranspose") == [
        (128, 3, 5, 5)] + [(128, 128, 5, 5)] * 3
    assert not any("/phase" in n.name for n in transposed.graph.node)
    for form in (transposed, polyphase_deconv_model(transposed)):
        assert np.abs(_run(form, y) - x64).max() <= tolerance


def test_the_inverse_rewrite_restores_every_kernel_bit_for_bit():
    """transposed(polyphase(g)) has g's ConvTranspose nodes and weights exactly, whichever placement the
    phases had (the one-hot ConvTranspose, or DepthToSpace as in the first polyphase exports)."""
    from roi_trt.onnx_emit import transform_models

    model, _ = load_checkpoint(DEMO_CHECKPOINT)
    emitted = transform_models(model, 13)[1]
    first_export = polyphase_deconv_model(emitted, min_channels=1)
    for node in first_export.graph.node:  # the first exports' placement of the phases
        if node.name.endswith("/interleave"):
            base = node.name[: -len("/interleave")]
            node.CopyFrom(onnx.helper.make_node("DepthToSpace", [base + "/dcr"], list(node.output), name=node.name,
                                                blocksize=2, mode="DCR"))
    kept = [n for n in first_export.graph.node if not n.name.endswith(("/unsqueeze", "/concat", "/shape", "/hw",
                                                                          "/flat_shape", "/flat"))]
    for base in {n.name[: -len("/interleave")] for n in kept if n.name.endswith("/interleave")}:
        at = next(i for i, n in enumerate(kept) if n.name == base + "/interleave")
        kept.insert(at, onnx.helper.make_node("Concat", ["{}/phase{}{}".format(base, rh, rw) for rh in (0, 1)
                                                         for rw in (0, 1)], [base + "/dcr"], name=base + "/concat", axis=1))
    del first_export.graph.node[:]
    first_export.graph.node.extend(kept)
    y = np.rint(np.random.default_rng(4).standard_normal((1, 128, 3, 4)) * 2).astype(np.float32)
    original = {t.name: onnx.numpy_helper.to_array(t) for t in emitted.graph.initializer}
    for polyphase in (polyphase_deconv_model(emitted), first_export):
        restored = transposed_deconv_model(polyphase)
        a, b = ([n for n in g.graph.node if n.op_type == "ConvTranspose"] for g in (emitted, restored))
        weights = {t.name: onnx.numpy_helper.to_array(t) for t in restored.graph.initializer}
        assert [(n.name, list(n.output), n.attribute) for n in a] == [(n.name, list(n.output), n.attribute) for n in b]
        for x, z in zip(a, b):
            np.testing.assert_array_equal(original[x.input[1]], weights[z.input[1]])
            assert x.input[2:] == z.input[2:]
        onnx.checker.check_model(restored, full_check=True)
    assert np.abs(_run(standard_ops_model(first_export), y) - _run(standard_ops_model(emitted), y)).max() <= 1e-4
    with pytest.raises(ValueError, match="not the four phase Convs"):
        broken = polyphase_deconv_model(emitted)
        broken.graph.node.remove(next(n for n in broken.graph.node if n.name.endswith("/phase11")))
        transposed_deconv_model(broken)
