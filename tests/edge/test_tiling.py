"""Tiled transforms equal untiled ones: the halo covers what every kept output depends on."""

import math
import os

import numpy as np
import pytest
from click.testing import CliRunner

from roi_trt.cli import main
from roi_trt.codec import WORK_BYTES, check_max_memory, open_codec
from roi_trt.entropy import quantize
from roi_trt.tiling import HALO, spans


def budget_for(codec, part, tile):
    """The max_memory that gives tiles of `tile` latents (core) for `part`."""
    d = codec.downsampling
    return int((tile + 2 * HALO) ** 2 * d * d * codec.model.N * WORK_BYTES[part]) + 1


@pytest.mark.parametrize("length, tile", [(250, 41), (188, 41), (41, 41), (42, 41), (1, 3), (7, 1), (100, 7)])
def test_cores_cover_the_axis_with_the_fewest_balanced_tiles(length, tile):
    cores = spans(length, tile)
    assert cores[0][0] == 0 and cores[-1][1] == length and all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
    sizes = [end - start for start, end in cores]
    assert len(cores) == -(-length // tile) and max(sizes) <= tile and max(sizes) - min(sizes) <= 1


@pytest.fixture(scope="module")
def whole(export_dir):
    return open_codec(export_dir, max_memory=1 << 40)


@pytest.mark.parametrize("tile", [1, 3, 5])
@pytest.mark.parametrize("size", [(200, 328), (96, 400)])
def test_tiled_equals_untiled(export_dir, whole, photo, tile, size):
    rgb = photo[100: 100 + size[0], 50: 50 + size[1]]
    frame = whole.prepare(rgb)
    reference_latent = whole.analyze(frame)[0]
    tiled = open_codec(export_dir, parts=("encoder",), max_memory=budget_for(whole, "encoder", tile))
    assert tiled.tile_latents("encoder") == (tile, tile)
    latent = tiled.analyze(frame)[0]
    same = np.mean(quantize(latent, tiled.tables) == quantize(reference_latent, whole.tables))
    assert same >= 0.9999 and np.abs(latent - reference_latent).max() < 1e-3

    y_hat = np.rint(reference_latent)[None].astype(np.float32)
    reference_image = whole.synthesize(y_hat)[0]
    tiled = open_codec(export_dir, parts=("decoder",), max_memory=budget_for(whole, "decoder", tile))
    assert tiled.tile_latents("decoder") == (tile, tile)
    assert np.abs(tiled.synthesize(y_hat)[0] - reference_image).max() <= 1.0 / 255


def test_a_transposed_decoder_gets_tiles_for_its_column_buffers(export_dir, tmp_path):
    """An export whose decoder keeps ConvTranspose (`--deconv convtranspose`) needs about twice the working
    memory: the same budget gives it smaller tiles, and they still stitch to the untiled image."""
    import json
    import shutil

    import onnx

    from roi_trt.codec import TRANSPOSED_DECODER_WORK_BYTES
    from roi_trt.artifacts import file_sha256
    from roi_trt.onnx_rewrite import transposed_deconv_model

    copy = str(tmp_path / "transposed")
    shutil.copytree(export_dir, copy)
    with open(os.path.join(copy, "manifest.json")) as f:
        manifest = json.load(f)
    for name in ("decoder.onnx", "decoder.std.onnx"):
        onnx.save(transposed_deconv_model(onnx.load(os.path.join(copy, name))), os.path.join(copy, name))
        manifest["sha256"][name] = file_sha256(os.path.join(copy, name))
    manifest["deconv"] = "convtranspose"
    with open(os.path.join(copy, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    budget = 64 << 20
    phases, transposed = (open_codec(path, parts=("decoder",), max_memory=budget) for path in (export_dir, copy))
    expected = int((budget / (16 * 16 * 128 * TRANSPOSED_DECODER_WORK_BYTES)) ** 0.5) - 2 * HALO
    assert transposed.tile_latents("decoder") == (expected, expected) < phases.tile_latents("decoder")
    y = np.rint(np.random.default_rng(1).standard_normal((1, 128, 2 * expected + 3, expected + 1)))
    y = y.astype(np.float32)
    whole = open_codec(copy, parts=("decoder",), max_memory=1 << 40).synthesize(y)[0]
    assert np.abs(transposed.synthesize(y)[0] - whole).max() <= 1.0 / 255


def test_streams_and_images_agree_through_the_cli(export_dir, photo, tmp_path):
    from PIL import Image

    Image.fromarray(photo[:300, :260]).save(str(tmp_path / "p.png"))
    runner = CliRunner()
    for name, memory in (("whole", "64G"), ("tiled", "8M")):
        assert runner.invoke(main, ["encode", str(tmp_path / "p.png"), "-m", export_dir, "--max-memory", memory,
                                    "-o", str(tmp_path / (name + ".roi"))]).exit_code == 0
        assert runner.invoke(main, ["decode", str(tmp_path / (name + ".roi")), "-m", export_dir, "--max-memory", memory,
                                    "-o", str(tmp_path / (name + ".png"))]).exit_code == 0
    assert (tmp_path / "whole.roi").read_bytes() == (tmp_path / "tiled.roi").read_bytes()
    a, b = (np.asarray(Image.open(str(tmp_path / n)), dtype=int) for n in ("whole.png", "tiled.png"))
    assert np.abs(a - b).max() <= 1
    bad = runner.invoke(main, ["decode", str(tmp_path / "whole.roi"), "-m", export_dir, "--max-memory", "lots"])
    assert bad.exit_code == 2 and "384M or 1.5G" in bad.output


def test_a_budget_below_one_tile_is_refused_with_the_minimum(export_dir, photo, tmp_path):
    """Review finding: `--max-memory 1K` was accepted and a 512x512 encode ran 20x longer in one-latent
    tiles. The minimum is one tile: a core of one latent and its halo, at the model's working memory."""
    from PIL import Image

    from roi_trt.errors import UsageError
    from roi_trt.store import resolve

    model = resolve(export_dir)
    d = model.downsampling
    need = (1 + 2 * HALO) ** 2 * d * d * model.N * WORK_BYTES["encoder"]
    check_max_memory(model, ("encoder",), int(math.ceil(need)))
    with pytest.raises(UsageError, match="less than one tile of the \\(128, 2\\) encoder needs: at least 3.4M"):
        check_max_memory(model, ("encoder",), int(need) - 1)
    Image.fromarray(photo[:64, :64]).save(str(tmp_path / "p.png"))
    refused = CliRunner().invoke(main, ["encode", str(tmp_path / "p.png"), "-m", export_dir, "--max-memory", "1K",
                                        "-o", str(tmp_path / "p.roi")])
    assert refused.exit_code == 2 and "--max-memory of 1024 bytes is less than one tile" in refused.output
    assert "at least 3.4M" in refused.output and not (tmp_path / "p.roi").exists()
    assert CliRunner().invoke(main, ["encode", str(tmp_path / "p.png"), "-m", export_dir, "--max-memory", "3.4M",
                                     "-o", str(tmp_path / "p.roi")]).exit_code == 0


def test_frames_side_by_side_keep_the_tiles_of_one_frame_and_fit_in_memory(export_dir, whole):
    """Each frame side by side keeps the whole budget (so a batch writes what single files write), and
    only as many run at once as a quarter of the free memory holds."""
    from roi_trt.backends.onnxruntime import usable_cores
    from roi_trt.tiling import available_memory

    if usable_cores() < 2 or available_memory() is None:
        pytest.skip("one core or no MemAvailable: frames do not run side by side")
    budget = budget_for(whole, "decoder", 9)
    with open_codec(export_dir, parts=("decoder",), max_memory=budget) as alone, \
            open_codec(export_dir, parts=("decoder",), max_memory=budget, frames=2 * usable_cores()) as batch:
        assert alone.backend.frames == 1 and batch.backend.frames == usable_cores()
        assert alone.tile_latents("decoder") == batch.tile_latents("decoder") == (9, 9)
        y = np.rint(np.random.default_rng(2).standard_normal((1, 128, 31, 23))).astype(np.float32)
        assert np.array_equal(alone.synthesize(y)[0], batch.synthesize(y)[0])  # tiles side by side on the pool
    with open_codec(export_dir, parts=("decoder",), max_memory=available_memory() // 4 // 2 + 1,
                    frames=2 * usable_cores()) as crowded:
        assert crowded.backend.frames == 1


@pytest.mark.parametrize("tile", [1, 3, None])
@pytest.mark.parametrize("crop", [None, (200, 328), (193, 321)])
def test_uint8_synthesis_equals_the_float_image_converted(export_dir, whole, photo, tile, crop):
    """Decoding converts each tile's core into the cropped uint8 image: exactly what converting the whole
    float image gives, tiled or not, at every crop the padding allows."""
    rgb = photo[:crop[0], :crop[1]] if crop else photo[:208, :336]
    y_hat = np.rint(whole.analyze(whole.prepare(rgb))[0])[None].astype(np.float32)
    codec = whole if tile is None else open_codec(export_dir, max_memory=budget_for(whole, "decoder", tile))
    expected = codec.finish_decode(codec.synthesize(y_hat)[0], crop)
    decoded, _ = codec.synthesize_rgb8(y_hat, crop)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    assert np.array_equal(decoded, expected)


def test_a_crop_that_does_not_match_the_latent_is_refused(whole):
    y_hat = np.zeros((1, 128, 2, 3), np.float32)
    for crop in ((33, 48), (16, 48), (32, 49)):
        with pytest.raises(ValueError, match="does not match"):
            whole.synthesize_rgb8(y_hat, crop)


def test_decoding_makes_no_float_image_of_the_whole_frame(export_dir, whole, photo):
    """Peak of numpy's allocations while decoding a 1024x1024 stream in tiles: below one float32 image of
    the frame (12 MiB), which decoding used to stitch before converting it."""
    import tracemalloc

    with open_codec(export_dir, max_memory=budget_for(whole, "decoder", 8)) as codec:
        data, _ = codec.encode(photo)
        expected = codec.finish_decode(codec.synthesize(codec.parse(data)[0])[0], None)
        tracemalloc.start()
        try:
            decoded, _ = codec.decode(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    float_image = 3 * photo.shape[0] * photo.shape[1] * 4
    assert np.array_equal(decoded, expected)
    assert peak < 0.75 * float_image, (peak, float_image)


def test_a_backend_that_holds_memory_for_a_largest_input_tiles_by_it(export_dir, whole):
    """A TensorRT engine's context reserved activations for its profile's largest input (backend.largest_input):
    a latent within it runs whole, whatever the host budget; a larger one in rectangular tiles of that size
    less the halo, stitched to the untiled result. (The engine's own figure needs a GPU: tests/test_tensorrt_gpu.py;
    here an ONNX Runtime backend says what an engine of a 6 x 12 latent profile would.)"""
    from roi_trt.backends.onnxruntime import OnnxRuntimeBackend
    from roi_trt.codec import Codec
    from roi_trt.store import resolve

    class Profiled(OnnxRuntimeBackend):
        shapes = []

        def largest_input(self, part):
            return 1, 6, 12

        def _run(self, part, array):
            self.shapes.append(array.shape[2:])
            return super(Profiled, self)._run(part, array)

    model = resolve(export_dir)
    codec = Codec(Profiled(model, parts=("decoder",)), model.entropy_tables(), max_memory=4 << 20)
    assert codec.tile_latents("decoder") == (2, 8)  # the profile less the halo, not the 4 MiB host budget
    rng = np.random.default_rng(5)
    fits = np.rint(rng.standard_normal((1, 128, 6, 12))).astype(np.float32)
    assert np.array_equal(codec.synthesize(fits)[0], whole.synthesize(fits)[0]) and Profiled.shapes == [(6, 12)]
    del Profiled.shapes[:]
    large = np.rint(rng.standard_normal((1, 128, 7, 20))).astype(np.float32)
    assert np.abs(codec.synthesize(large)[0] - whole.synthesize(large)[0]).max() <= 1.0 / 255
    assert all(h <= 6 and w <= 12 for h, w in Profiled.shapes) and len(Profiled.shapes) == 4 * 3
