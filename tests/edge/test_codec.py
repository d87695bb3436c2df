"""Encode/decode through ONNX Runtime and the rANS core: image modes, sizes, streams, the CLI."""

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roi_trt import bitstream
from roi_trt.cli import main
from roi_trt.codec import open_codec
from roi_trt.errors import BitstreamError, ModelMismatchError, RoiTrtError
from roi_trt.imageio import load_rgb


@pytest.fixture()
def codec(export_dir):
    return open_codec(export_dir, backend="onnxruntime")


@pytest.mark.parametrize("size", [(333, 517), (16, 16), (1, 1), (17, 300), (512, 512)])
def test_round_trip_keeps_the_size(codec, photo, size):
    rgb = photo[: size[0], : size[1]]
    data, _ = codec.encode(rgb)
    header, _ = bitstream.unpack(data)
    assert (header.height, header.width) == size
    assert (header.latent_height, header.latent_width) == tuple(-(-s // 16) for s in size)
    decoded, _ = codec.decode(data)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8


def test_resize_option(codec, photo):
    data, _ = codec.encode(photo[:300, :400], size=(128, 96))
    decoded, _ = codec.decode(data)
    assert decoded.shape == (128, 96, 3)


def _save_mode(photo, mode, path):
    img = Image.fromarray(photo)
    if mode == "I;16":
        gray = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        img = Image.fromarray(gray.astype(np.uint16))
        img.save(path, format="PNG")
        return
    img.convert(mode).save(path, format="TIFF" if mode == "CMYK" else "PNG")


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I;16"])
def test_every_image_mode_encodes(codec, photo, mode, tmp_path):
    path = str(tmp_path / ("in." + ("tif" if mode == "CMYK" else "png")))
    _save_mode(photo[:100, :150], mode, path)
    rgb, note = load_rgb(path)
    assert rgb.shape == (100, 150, 3) and rgb.dtype == np.uint8
    assert note is not None and "to RGB" in note
    if mode == "I;16":
        # scaled from 16 to 8 bits, not clipped at 255
        expected = np.asarray(Image.fromarray(photo[:100, :150]).convert("L"))
        assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    decoded, _ = codec.decode(codec.encode(rgb)[0])
    assert decoded.shape == rgb.shape


def test_exif_orientation_is_applied(photo, tmp_path):
    path = str(tmp_path / "rotated.jpg")
    img = Image.fromarray(photo[:100, :150])
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(path, exif=exif.tobytes())
    rgb, _ = load_rgb(path)
    assert rgb.shape == (150, 100, 3)


@pytest.mark.parametrize("kind", ["plain", "exif", "truncated"])
def test_rgb_pngs_read_as_pillow_reads_them(photo, kind):
    """8-bit RGB PNGs go through libpng where imagecodecs is installed; EXIF orientation and damaged
    files still get Pillow's handling and messages."""
    from roi_trt.imageio import decode_rgb

    rgb = photo[:70, :90]
    img, out = Image.fromarray(rgb), io.BytesIO()
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(out, format="PNG", **({"exif": exif.tobytes()} if kind == "exif" else {}))
    data = out.getvalue()
    if kind == "truncated":
        with pytest.raises(RoiTrtError, match="x.png: cannot read image"):
            decode_rgb(data[: len(data) // 2], "x.png")
        return
    decoded, note = decode_rgb(data, "x.png")
    assert decoded.flags.writeable and note is None
    np.testing.assert_array_equal(decoded, np.rot90(rgb, -1) if kind == "exif" else rgb)
    try:
        import imagecodecs  # noqa: F401
    except ImportError:  # Python 3.6: Pillow reads them all
        return
    from roi_trt.imageio import _png_rgb8, _png_rgb8_size

    assert _png_rgb8_size(data) == rgb.shape[:2]
    assert (_png_rgb8(data, rgb.shape[:2]) is None) == (kind == "exif")  # the plain one takes libpng


def test_stream_from_another_model_is_refused(codec, photo, other_model_export):
    data, _ = codec.encode(photo[:64, :64])
    other = open_codec(other_model_export, backend="onnxruntime")
    with pytest.raises(ModelMismatchError, match="decode with the encoding model"):
        other.decode(data)


def test_reference_packets_decode(codec, photo):
    data, _ = codec.encode(photo[:64, :96])
    header, payload = bitstream.unpack(data)
    packet = bitstream.pack_reference_packet(payload, (header.latent_height, header.latent_width))
    from_packet, _ = codec.decode(packet)
    from_stream, _ = codec.decode(data)
    np.testing.assert_array_equal(from_packet, from_stream)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "neither"),
        (b"ROIc", "truncated"),
        (b"\x82\xa6latent\x90\xa5shape\x92\x01\x01", "exactly one latent"),
        (b"\x81\xa1a\x01", "not a reference packet"),
    ],
)
def test_malformed_streams_give_clear_errors(codec, data, message):
    with pytest.raises(BitstreamError, match=message):
        codec.decode(data)


def test_oversized_claims_are_rejected_before_allocation(codec, photo):
    data, _ = codec.encode(photo[:32, :32])
    head = bytearray(data[: bitstream.HEADER_SIZE - 4])
    struct.pack_into("<II", head, 18, 60000, 60000)  # 3.6 GP image
    struct.pack_into("<HH", head, 26, 3750, 3750)
    payload = data[bitstream.HEADER_SIZE:]
    crc = zlib.crc32(payload, zlib.crc32(bytes(head))) & 0xFFFFFFFF
    forged = bytes(head) + struct.pack("<I", crc) + payload
    with pytest.raises(BitstreamError, match="the .roi format.s limit"):
        codec.decode(forged)
    length_lie = bytearray(data)
    struct.pack_into("<I", length_lie, 30, 1 << 31)
    with pytest.raises(BitstreamError, match="payload length"):
        codec.decode(bytes(length_lie))
    huge_packet = bitstream.pack_reference_packet(payload, (100000, 100000))
    with pytest.raises(BitstreamError, match="the .roi format.s limit"):
        codec.decode(huge_packet)


def test_fuzz_streams(codec, photo):
    """2000 seeded mutations of a real stream: each decodes or fails with a clear error."""
    data, _ = codec.encode(photo[:48, :48])
    rng = np.random.default_rng(99)
    failures = 0
    for i in range(2000):
        b = bytearray(data)
        if i % 4 == 0:
            b = b[: rng.integers(0, len(b))]
        elif i % 4 == 1:
            b[rng.integers(0, len(b))] ^= 1 << rng.integers(0, 8)
        elif i % 4 == 2:
            b = bytearray(rng.integers(0, 256, size=rng.integers(0, 200)).astype(np.uint8))
            if i % 8 == 2:
                b[:4] = b"ROIc"
        else:
            b = b[:6] + bytes([rng.integers(0, 256)]) + b[7:]
        try:
            codec.decode(bytes(b))
        except RoiTrtError:
            failures += 1
    assert failures >= 1990


def test_cli_encode_decode(export_dir, photo, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(64, 80), (33, 47)]):
        Image.fromarray(photo[: size[0], : size[1]]).save(str(src / "img{}.png".format(i)))
    (src / "broken.png").write_bytes(b"not an image")
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(src), "-m", export_dir, "-o", str(tmp_path / "roi"), "--json"])
    assert result.exit_code == 1  # broken.png failed, the rest went on
    # click < 8.2 and >= 8.2 differ in whether stderr is mixed into output: keep the JSON lines
    lines = [json.loads(l) for l in result.output.splitlines() if l.startswith("{")]
    assert lines[-1]["summary"]["ok"] == 2 and lines[-1]["summary"]["failed"] == 1
    assert any("error" in l and l["file"].endswith("broken.png") for l in lines)
    ok = [l for l in lines if "bpp" in l and "file" in l]
    assert all(l["bytes"] == os.path.getsize(l["output"]) for l in ok)
    assert sorted(os.listdir(str(tmp_path / "roi"))) == ["img0.roi", "img1.roi"]  # no partial files

    result = runner.invoke(main, ["decode", str(tmp_path / "roi" / "*.roi"), "-m", export_dir, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(str(tmp_path / "out" / "img1.decoded.png")).size == (47, 33)
    assert "decoded 2/2 files" in result.output

    # one input: OUT with an extension is the file, without one a directory
    one = str(src / "img0.png")
    assert runner.invoke(main, ["encode", one, "-m", export_dir, "-o", str(tmp_path / "single.roi")]).exit_code == 0
    assert runner.invoke(main, ["encode", one, "-m", export_dir, "-o", str(tmp_path / "newdir")]).exit_code == 0
    assert (tmp_path / "single.roi").read_bytes() == (tmp_path / "newdir" / "img0.roi").read_bytes()
    result = runner.invoke(main, ["decode", str(tmp_path / "single.roi"), "-m", export_dir, "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 0 and Image.open(str(tmp_path / "x.png")).size == (80, 64)


def test_cli_subprocess_errors_are_one_line(export_dir, tmp_path):
    bad = tmp_path / "bad.roi"
    bad.write_bytes(b"ROIc" + b"\x00" * 60)
    proc = subprocess.run(
        [sys.executable, "-m", "roi_trt.cli", "decode", str(bad), "-m", export_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error: {}: unsupported .roi version 0".format(bad) in proc.stderr or "payload length" in proc.stderr
    assert not (tmp_path / "bad.png").exists()

    proc = subprocess.run(
        [sys.executable, "-m", "roi_trt.cli", "encode", str(tmp_path / "x.png"), "-m", str(tmp_path / "nope")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "no such model" in proc.stderr


def test_reserved_header_byte_must_be_zero(codec, photo):
    """The README documents byte 9 as reserved (0); a stream that sets it is refused, checksum or not."""
    data, _ = codec.encode(photo[:32, :32])
    assert data[9:10] == b"\x00"
    head = bytearray(data[: bitstream.HEADER_SIZE - 4])
    head[9] = 1
    payload = data[bitstream.HEADER_SIZE:]
    forged = bytes(head) + struct.pack("<I", zlib.crc32(payload, zlib.crc32(bytes(head))) & 0xFFFFFFFF) + payload
    with pytest.raises(BitstreamError, match="reserved header byte is 0x1, not 0"):
        bitstream.unpack(forged)


def _jpeg_claiming(width, height):
    """A small real JPEG whose frame header (SOF0) claims width x height (its scan holds 90x80 pixels)."""
    out = io.BytesIO()
    Image.new("RGB", (90, 80), (90, 120, 150)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _png(width, height):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("data, message", [
    (_jpeg_claiming(9000, 8000), "big.jpg: image size 9000x8000: 72000000 pixels, over the .roi format's limit of "
                                 "67108864 (64 MP)"),
    (_png(16, 33000), "big.jpg: image size 16x33000: a side over 32768 pixels, the .roi format's limit"),
], ids=["jpeg-72MP", "png-tall"])
def test_image_size_is_checked_from_the_header_before_any_pixel(data, message):
    """Review finding: a 9000x8000 JPEG ran ~2 minutes of analysis before "out of range"; a 16x33000 image
    ran every tile, then failed in bitstream.pack. The 8-bit RGB PNG takes the libpng path where it is
    installed, the JPEG Pillow's."""
    from roi_trt.imageio import decode_rgb

    with pytest.raises(RoiTrtError) as refused:
        decode_rgb(data, "big.jpg", check_size=bitstream.check_image_size)
    assert str(refused.value) == message


def test_encode_refuses_oversized_images_before_any_transform(export_dir, tmp_path, codec):
    data = _png(16, 33000)
    (tmp_path / "tall.png").write_bytes(data)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # its pixels cannot be read: only its header
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "cut.png"), "-m", export_dir, "-o", str(tmp_path / "t.roi")])
    assert result.exit_code == 1 and "cut.png: image size 16x33000: a side over 32768 pixels" in result.output
    assert not (tmp_path / "t.roi").exists()
    small = CliRunner().invoke(main, ["encode", str(tmp_path / "tall.png"), "-m", export_dir, "--size", "16x2000",
                                      "-o", str(tmp_path / "s.roi")])
    assert small.exit_code == 0, small.output  # --size resizes first: the resized size is what a stream holds
    huge = CliRunner().invoke(main, ["encode", str(tmp_path / "tall.png"), "-m", export_dir, "--size", "40000"])
    assert huge.exit_code == 2 and "40000x40000: a side over 32768 pixels" in huge.output
    analyzed = []  # frames in memory: refused in Codec.encode, before the analysis transform runs
    run = codec.backend.analysis
    codec.backend.analysis = lambda x: analyzed.append(x.shape) or run(x)
    with pytest.raises(BitstreamError, match="a side over 32768 pixels"):
        codec.encode(np.zeros((33000, 16, 3), np.uint8))
    with pytest.raises(BitstreamError, match="over the .roi format's limit of 67108864"):
        codec.encode(np.zeros((64, 64, 3), np.uint8), size=(8200, 8200))
    assert analyzed == []


def test_pillows_decompression_bomb_limit_gets_one_line(monkeypatch):
    from roi_trt.imageio import decode_rgb

    gray = io.BytesIO()
    Image.new("L", (40, 40), 128).save(gray, format="PNG")  # Pillow's path (not 8-bit RGB)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: Pillow itself would only warn
    with pytest.raises(RoiTrtError) as refused, pytest.warns(Image.DecompressionBombWarning):  # the CLI hides it
        decode_rgb(gray.getvalue(), "bomb.png")
    assert str(refused.value) == ("bomb.png: image size 40x40: 1600 pixels, over Pillow's decompression-bomb limit "
                                  "of 1000 (PIL.Image.MAX_IMAGE_PIXELS)")
    with pytest.raises(RoiTrtError, match="^rgb.png: image size 40x40: 1600 pixels, over Pillow's"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warning where it reads 8-bit RGB PNGs too (no imagecodecs)
        decode_rgb(_png(40, 40), "rgb.png")  # the libpng path keeps the same limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # over twice the limit: Pillow raises in open
    with pytest.raises(RoiTrtError, match="^bomb.png: over twice Pillow's decompression-bomb limit of 500 pixels"):
        decode_rgb(gray.getvalue(), "bomb.png")


def test_unreadable_image_message_names_the_file_only():
    """Review finding: the message leaked `<_io.BytesIO object at 0x...>`."""
    from roi_trt.imageio import decode_rgb

    with pytest.raises(RoiTrtError) as refused:
        decode_rgb(b"neither JPEG nor PNG", "notes.jpg")
    assert str(refused.value) == "notes.jpg: not an image (no format Pillow reads)"
