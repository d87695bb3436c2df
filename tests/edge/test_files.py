"""The file rules of `encode`/`decode` (torch-free, Python 3.6): no input is ever overwritten, no two
inputs share an output, existing outputs are kept unless --force, outputs take their suffix's format,
standard streams work, and the summary counts the truth."""

import hashlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roi_trt.cli import main
from roi_trt.imageio import BAND_ROWS, to_nchw, to_rgb8, write_png

# The CLI with torch unimportable: what an edge install (pip install . onnxruntime) runs.
NO_TORCH = "import sys; sys.modules['torch'] = None; from roi_trt.cli import main; sys.exit(main())"


def digest(path):
    with open(str(path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture()
def photos(photo, tmp_path):
    """a.png and a.jpg (the same stem) plus b.png, in one directory."""
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(photo[:64, :96]).save(str(d / "a.png"))
    Image.fromarray(photo[100:164, :96]).save(str(d / "a.jpg"), quality=95)
    Image.fromarray(photo[:48, :48]).save(str(d / "b.png"))
    return d


def test_decode_next_to_the_originals_never_replaces_them(export_dir, photos):
    before = {p.name: digest(p) for p in photos.iterdir()}
    assert cli("encode", photos, "-m", export_dir).exit_code == 0
    first = cli("decode", photos, "-m", export_dir)
    assert first.exit_code == 0, first.output
    assert {p.name: digest(p) for p in photos.iterdir() if p.name in before} == before
    assert {"a.png.decoded.png", "a.jpg.decoded.png", "b.decoded.png"} <= set(os.listdir(str(photos)))
    decoded = {p.name: digest(p) for p in photos.iterdir() if ".decoded." in p.name}

    again = cli("decode", photos, "-m", export_dir)  # outputs exist: left alone, reported, non-zero exit
    assert again.exit_code == 1
    assert "decoded 0/3 files (0 failed, 3 skipped)" in again.output and "--force replaces it" in again.output
    assert {p.name: digest(p) for p in photos.iterdir() if p.name in before} == before

    (photos / "b.decoded.png").write_bytes(b"user edited this")
    forced = cli("decode", photos, "-m", export_dir, "--force")
    assert forced.exit_code == 0 and "decoded 3/3 files" in forced.output
    assert {p.name: digest(p) for p in photos.iterdir() if ".decoded." in p.name} == decoded
    assert {p.name: digest(p) for p in photos.iterdir() if p.name in before} == before
    assert not [n for n in os.listdir(str(photos)) if n.endswith(".part")]


def test_inputs_with_one_stem_keep_both_outputs(export_dir, photos, tmp_path):
    result = cli("encode", photos / "a.png", photos / "a.jpg", photos / "b.png", "-m", export_dir, "-o", tmp_path / "out")
    assert result.exit_code == 0 and "encoded 3/3 files" in result.output
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["a.jpg.roi", "a.png.roi", "b.roi"]
    for name, source in (("a.png.roi", "a.png"), ("a.jpg.roi", "a.jpg")):  # each holds its own input's stream
        assert cli("encode", photos / source, "-m", export_dir, "-o", tmp_path / "alone.roi", "--force").exit_code == 0
        assert digest(tmp_path / "out" / name) == digest(tmp_path / "alone.roi")
    assert digest(tmp_path / "out" / "a.png.roi") != digest(tmp_path / "out" / "a.jpg.roi")


def test_one_name_from_two_directories_is_refused_before_any_work(export_dir, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.open(str(photos / "b.png")).save(str(other / "b.png"))
    result = cli("encode", photos / "b.png", other / "b.png", "-m", export_dir, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "would both write" in result.output
    assert not (tmp_path / "out").exists()


def test_an_input_is_never_an_output(export_dir, photos, tmp_path):
    before = digest(photos / "a.png")
    refused = cli("encode", photos / "a.png", "-m", export_dir, "-o", photos / "a.png", "--force")
    assert refused.exit_code == 2 and "unknown output suffix" in refused.output
    stream = tmp_path / "s.png"  # a stream under an image's name, decoded onto itself
    assert cli("encode", photos / "a.png", "-m", export_dir, "-o", tmp_path / "s.roi").exit_code == 0
    os.rename(str(tmp_path / "s.roi"), str(stream))
    kept = digest(stream)
    result = cli("decode", stream, "-m", export_dir, "-o", stream, "--force")
    assert result.exit_code == 1 and "is an input: refusing to overwrite it" in result.output
    assert digest(stream) == kept and digest(photos / "a.png") == before


def test_existing_output_needs_force(export_dir, photos, tmp_path):
    target = tmp_path / "x.roi"
    target.write_bytes(b"precious")
    kept = cli("encode", photos / "b.png", "-m", export_dir, "-o", target)
    assert kept.exit_code == 1 and "skipped" in kept.output and target.read_bytes() == b"precious"
    replaced = cli("encode", photos / "b.png", "-m", export_dir, "-o", target, "--force")
    assert replaced.exit_code == 0 and target.read_bytes()[:4] == b"ROIc"


@pytest.mark.parametrize("suffix, pil_format", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                                (".tif", "TIFF"), (".TIFF", "TIFF")])
def test_output_suffix_names_the_format(export_dir, photos, tmp_path, suffix, pil_format):
    stream = tmp_path / "b.roi"
    assert cli("encode", photos / "b.png", "-m", export_dir, "-o", stream).exit_code == 0
    out = tmp_path / ("b" + suffix)
    assert cli("decode", stream, "-m", export_dir, "-o", out).exit_code == 0
    with Image.open(str(out)) as img:
        assert img.format == pil_format and img.size == (48, 48)


@pytest.mark.parametrize("library", ["imagecodecs", "pillow"])
def test_png_writes_are_lossless_with_either_library(library):
    if library == "imagecodecs":
        pytest.importorskip("imagecodecs", reason="imagecodecs is installed on Python 3.8+ only")
    rng = np.random.default_rng(5)
    smooth = np.cumsum(rng.integers(-3, 4, (37, 53, 3)), axis=1) % 256
    for rgb in (rng.integers(0, 256, (37, 53, 3)), smooth, np.zeros((1, 1, 3))):
        for rgb in (np.asarray(rgb, np.uint8), np.asarray(rgb, np.uint8)[:, ::-1]):  # its own memory, a strided view
            out = io.BytesIO()
            write_png(rgb, out, library)
            with Image.open(io.BytesIO(out.getvalue())) as img:
                assert img.format == "PNG" and img.mode == "RGB"
                np.testing.assert_array_equal(np.asarray(img), rgb)


@pytest.mark.parametrize("height", [1, BAND_ROWS - 1, BAND_ROWS, 2 * BAND_ROWS + 1])
def test_conversions_between_uint8_and_float_images_equal_the_reference_formulas(height):
    """to_nchw / to_rgb8 avoid full-size float temporaries (bands, in place) and give what the reference's
    x / 255 and clip(rint(255 x)) give, bit for bit."""
    rng = np.random.default_rng(height)
    rgb = rng.integers(0, 256, (height, 37, 3)).astype(np.uint8)
    x = to_nchw(rgb)
    assert x.shape == (1, 3, height, 37) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    wild = (rng.standard_normal(x.shape) * 0.7 + 0.5).astype(np.float32)  # beyond [0, 1] both ways
    out = to_rgb8(wild)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.clip(np.rint(wild[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(to_rgb8(x), rgb)


def test_unknown_output_suffixes_are_refused(export_dir, photos, tmp_path):
    stream = tmp_path / "b.roi"
    assert cli("encode", photos / "b.png", "-m", export_dir, "-o", stream).exit_code == 0
    for args in (("decode", stream, "-o", tmp_path / "b.bmp"), ("encode", photos / "b.png", "-o", tmp_path / "b.bin")):
        result = cli(*(args + ("-m", export_dir)))
        assert result.exit_code == 2 and "unknown output suffix" in result.output
    many = cli("encode", photos / "a.png", photos / "b.png", "-m", export_dir, "-o", tmp_path / "one.roi")
    assert many.exit_code == 2 and "names one file but 2 inputs" in many.output


def test_directory_outputs_take_the_format_option(export_dir, photos, tmp_path):
    assert cli("encode", photos / "b.png", "-m", export_dir, "-o", tmp_path).exit_code == 0
    assert cli("decode", tmp_path / "b.roi", "-m", export_dir, "--format", "webp").exit_code == 0
    with Image.open(str(tmp_path / "b.decoded.webp")) as img:
        assert img.format == "WEBP"


def test_standard_input_and_output_pipe(export_dir, photos, tmp_path):
    """cat a.png | roi-trt encode - -o - | roi-trt decode - -o a.png, with torch unimportable."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with open(str(photos / "a.png"), "rb") as f:
        encode = subprocess.run([sys.executable, "-c", NO_TORCH, "encode", "-", "-o", "-", "-m", export_dir],
                                stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert encode.returncode == 0, encode.stderr
    assert encode.stdout[:4] == b"ROIc" and b"encoded 1/1" in encode.stderr
    assert cli("encode", photos / "a.png", "-m", export_dir, "-o", tmp_path / "a.roi").exit_code == 0
    assert (tmp_path / "a.roi").read_bytes() == encode.stdout

    decode = subprocess.run([sys.executable, "-c", NO_TORCH, "decode", "-", "-o", "-", "-m", export_dir],
                            input=encode.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert decode.returncode == 0, decode.stderr
    assert cli("decode", tmp_path / "a.roi", "-m", export_dir, "-o", tmp_path / "a.png").exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(decode.stdout))),
                                  np.asarray(Image.open(str(tmp_path / "a.png"))))

    for args, message in (((photos / "a.png", photos / "b.png", "-o", "-"), "exactly one input"),
                          (("-",), "reading standard input: give -o"),
                          (("-", photos / "a.png", "-o", tmp_path), "must be the only input"),
                          ((photos / "a.png", "-o", "-", "--json"), "both want standard output")):
        result = cli(*(("encode",) + args + ("-m", export_dir)))
        assert result.exit_code == 2 and message in result.output


def test_default_model_runs_without_torch(photos, tmp_path):
    """An edge install runs the shipped demo model: its export ships in the package."""
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "encode", str(photos / "b.png"), "-o", str(tmp_path / "b.roi")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "decode", str(tmp_path / "b.roi"), "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["output"] == str(tmp_path / "b.decoded.png")


@pytest.mark.parametrize("command", [["info", "{ckpt}"], ["export"], ["train", "--demo-data", "-o", "{tmp}"],
                                     ["encode", "{img}", "--backend", "torch"],
                                     ["bench", "latency", "{img}", "--models", "demo", "--backends", "torch",
                                      "--codecs", "", "-o", "{tmp}/l.csv"]])
def test_commands_that_need_torch_say_so_in_one_line(photos, tmp_path, command):
    from roi_trt.store import DEMO_CHECKPOINT

    args = [a.format(ckpt=DEMO_CHECKPOINT, tmp=tmp_path, img=photos / "b.png") for a in command]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "pip install 'roi-trt[torch]'" in text, text
    assert "roi-trt  " not in text  # the command is named
    assert proc.returncode != 0 or command[0] == "bench"  # the harness skips the method and says why
    if command[0] == "bench":
        assert "nothing to measure" in text and proc.returncode == 1


@pytest.mark.parametrize("command", [["export"], ["encode", "{img}", "--backend", "torch", "-o", "{tmp}/b.roi"]])
def test_a_broken_optional_package_gets_one_line_naming_the_cause(photos, tmp_path, command):
    """Review finding: torch installed but broken (an ImportError without a module name, as a missing CUDA
    library gives on a Jetson) made `export` print a traceback."""
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(u'raise ImportError("libcudart.so.10.2: cannot open shared object file")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site)] + sys.path))
    args = [a.format(tmp=tmp_path, img=photos / "b.png") for a in command]
    proc = subprocess.run([sys.executable, "-m", "roi_trt.cli"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == ["Error: {} needs torch, which is installed but does not import: "
                                                "libcudart.so.10.2: cannot open shared object file (reinstall it, or "
                                                "install what it names)".format(
                                                    "roi-trt export" if command[0] == "export" else "the torch backend")]


def test_summary_counts_bits_over_all_pixels(export_dir, photos, tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(str(photos / "tiny.png"))  # header-dominated bpp
    result = cli("encode", photos / "a.png", photos / "tiny.png", "-m", export_dir, "-o", tmp_path, "--json")
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    files, summary = rows[:-1], rows[-1]["summary"]
    total = sum(8 * r["bytes"] for r in files) / float(sum(r["width"] * r["height"] for r in files))
    assert summary["bpp"] == pytest.approx(total, abs=1e-5) and summary["bits"] == sum(8 * r["bytes"] for r in files)
    assert summary["mean_file_bpp"] == pytest.approx(np.mean([r["bpp"] for r in files]), abs=1e-4)
    assert summary["mean_file_bpp"] > 5 * summary["bpp"]  # the tiny file dominates a per-file mean


def test_progress_bar_only_when_asked_or_on_a_terminal(export_dir, photos, tmp_path):
    quiet = subprocess.run([sys.executable, "-c", NO_TORCH, "encode", str(photos), "-m", export_dir, "-o", str(tmp_path / "q")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert quiet.returncode == 0 and "file/s" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-c", NO_TORCH, "encode", str(photos), "-m", export_dir, "-o", str(tmp_path / "l"),
                           "--progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert loud.returncode == 0 and "0/3 [" in loud.stderr and "file/s" in loud.stderr


def test_every_option_has_help():
    import click

    def commands(group, prefix):
        for name, command in group.commands.items():
            yield prefix + [name], command
            if isinstance(command, click.Group):
                for item in commands(command, prefix + [name]):
                    yield item

    for path, command in commands(main, []):
        assert command.help, path
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, "{} {}".format(" ".join(path), param.opts)


def test_awkward_inputs_and_outputs(export_dir, photos, tmp_path):
    """Review findings: a glob-looking name that exists, a subdirectory named like an image, an output that
    cannot be written, an existing file as -o DIR, empty input."""
    Image.open(str(photos / "b.png")).save(str(photos / "img[1].png"))
    Image.open(str(photos / "b.png")).crop((0, 0, 32, 32)).save(str(photos / "img1.png"))
    result = cli("encode", photos / "img[1].png", "-m", export_dir, "-o", tmp_path / "lit.roi")
    assert result.exit_code == 0 and "48x48" in result.output  # img[1].png itself, not img1.png (32x32)
    (photos / "sub.png").mkdir()
    (photos / "b.roi").mkdir()  # the output of b.png is a directory: that input fails, the rest go on
    result = cli("encode", photos, "-m", export_dir, "--force", "--json")
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert result.exit_code == 1 and rows[-1]["summary"]["files"] == 5  # sub.png is no input
    assert [r for r in rows if r.get("skipped", "").endswith("b.roi is a directory")]
    assert rows[-1]["summary"]["ok"] == 4
    (tmp_path / "plain").write_bytes(b"keep")
    result = cli("encode", photos / "b.png", "-m", export_dir, "-o", tmp_path / "plain")
    assert result.exit_code == 2 and "exists and is not a directory" in result.output
    assert (tmp_path / "plain").read_bytes() == b"keep"
    (tmp_path / "empty.roi").write_bytes(b"")
    result = cli("decode", tmp_path / "empty.roi", "-m", export_dir, "-o", tmp_path / "e.png")
    assert result.exit_code == 1 and "empty input" in result.output
    result = CliRunner().invoke(main, ["encode", "-", "-o", str(tmp_path / "std"), "-m", export_dir],
                                input=(photos / "b.png").read_bytes())
    assert result.exit_code == 0 and os.listdir(str(tmp_path / "std")) == ["stdin.roi"]


def _refuses_files(directory):
    import tempfile

    try:
        fd, path = tempfile.mkstemp(dir=directory)
    except OSError:
        return True
    os.close(fd)
    os.unlink(path)
    return False


@pytest.fixture()
def unwritable(tmp_path):
    """A directory where no file can be created: read-only by its mode, or (for root, whom modes do not stop)
    sysfs, where nobody creates files."""
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        found = [d for d in (str(directory), "/sys/kernel") if os.path.isdir(d) and _refuses_files(d)]
        if not found:
            pytest.skip("no directory here refuses new files to this user")
        yield found[0]
    finally:
        directory.chmod(0o755)


def test_atomic_output_errors_name_the_target(unwritable, tmp_path):
    """Review finding: a failed output named its temporary `.part` file."""
    from roi_trt.errors import RoiTrtError
    from roi_trt.fileio import atomic_output, check_output

    target = os.path.join(unwritable, "l.csv")
    with pytest.raises(OSError) as failed:
        with atomic_output(target):
            pass
    assert failed.value.filename == target
    with pytest.raises(OSError) as failed:
        with atomic_output(str(tmp_path / "a.csv")) as tmp:
            os.listdir(tmp)  # an error about the temporary file
    assert failed.value.filename == str(tmp_path / "a.csv")
    elsewhere = str(tmp_path / "missing" / "input.png")
    with pytest.raises(OSError) as failed:
        with atomic_output(str(tmp_path / "b.csv")):
            open(elsewhere)  # an error about another file keeps its name
    assert failed.value.filename == elsewhere
    assert os.listdir(str(tmp_path)) == ["ro"]  # nothing published, nothing left behind
    with pytest.raises(RoiTrtError, match="^{}: cannot be written".format(re.escape(target))):
        check_output(target)
    check_output(str(tmp_path / "new" / "deeper" / "x.csv"))  # can be made later: nothing is made now
    assert os.listdir(str(tmp_path)) == ["ro"]


# Every command that writes: its arguments, with {ro} an unwritable directory. Each must refuse before its
# work, naming the output as given (bench latency used to run the whole benchmark, then name a `.part` file).
WRITERS = [
    ["encode", "{img}", "-o", "{ro}/b.roi"],
    ["encode", "{img}", "-o", "{ro}/encoded"],
    ["decode", "{stream}", "-o", "{ro}/b.png"],
    ["demo", "-o", "{ro}/demo"],
    ["bench", "latency", "{missing}", "--models", "demo", "--backends", "onnxruntime", "--codecs", "", "-o", "{ro}/l.csv"],
    ["bench", "precision", "{dir}", "--annotations", "{odgt}", "--models", "demo", "-o", "{ro}/p.csv"],
    ["bench", "report", "{odgt}", "--plot", "{ro}/fig5.png"],
    ["bench", "precision-report", "{odgt}", "--plot", "{ro}/fig4.png"],
    ["audit", "{dir}", "--max-faces", "0", "--annotate", "{ro}/annotated"],
    ["train", "--demo-data", "-o", "{ro}/train"],
    ["export", "-o", "{ro}/export"],
    ["build", "-o", "{ro}/engines"],
    ["doctor", "--selftest", "--report", "{ro}/selftest"],
    ["serve", "repo", "demo", "-o", "{ro}/model_repository"],
    ["serve", "run", "{dir}", "--log-file", "{ro}/triton.log"],
]


@pytest.mark.parametrize("command", WRITERS, ids=[" ".join(c[:2]) + (" dir" if c[-1].endswith("encoded") else "")
                                                  for c in WRITERS])
def test_every_output_is_checked_before_the_work(photos, tmp_path, unwritable, command):
    (tmp_path / "gt.odgt").write_text(u'{"ID": "b", "gtboxes": []}\n')
    args = [a.format(ro=unwritable, img=photos / "b.png", stream=tmp_path / "b.roi", missing=tmp_path / "nope.png",
                     dir=photos, odgt=tmp_path / "gt.odgt") for a in command]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: " + args[-1]) and ": cannot be written (" in last, last
    assert ".part" not in proc.stderr and "torch" not in proc.stderr  # before the work, before even importing it


def test_a_directory_replaced_whole_needs_a_writable_parent(tmp_path):
    """export, serve repo and build stage or lock beside their directory: its parent must take new entries."""
    from roi_trt.errors import RoiTrtError
    from roi_trt.fileio import check_output

    parent = tmp_path / "ro"
    (parent / "export").mkdir(parents=True)
    parent.chmod(0o555)
    try:
        if not _refuses_files(str(parent)):
            pytest.skip("file modes do not stop this user (root)")
        check_output(str(parent / "export"), directory=True)  # files written into it: fine
        with pytest.raises(RoiTrtError, match="export: cannot be written"):
            check_output(str(parent / "export"), directory=True, beside=True)
    finally:
        parent.chmod(0o755)


def test_default_mode_reads_the_umask_without_changing_it(monkeypatch, tmp_path):
    """Review finding: it flipped the process umask, for a moment, under every other thread."""
    from roi_trt import fileio

    previous = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("os.umask called")

        monkeypatch.setattr(os, "umask", no_umask)
        assert fileio.default_mode() == 0o640 and fileio.default_mode(directory=True) == 0o750
        monkeypatch.setattr(fileio, "_STATUS", str(tmp_path / "absent"))  # not Linux: a probe file shows it
        assert fileio.default_mode() == 0o640
    finally:
        monkeypatch.undo()
        os.umask(previous)


def test_a_reader_gone_from_the_pipe_ends_the_command_quietly():
    """`roi-trt info | head -1`: no "Error: Broken pipe", and the status of a command a pipe ended (141)."""
    import subprocess
    import sys

    reader_gone = subprocess.Popen([sys.executable, "-m", "roi_trt.cli", "info"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
    reader_gone.stdout.close()  # before the command writes its first line
    assert reader_gone.stderr.read() == b"" and reader_gone.wait(60) == 141
