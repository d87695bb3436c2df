import ast
import csv
import glob
import io
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import roi_trt
from roi_trt.bench import provenance
from roi_trt.bench.latency import FIELDS, environment, load_images, measure, read_csv, write_csv
from roi_trt.bench.methods import PillowCodecMethod, RoiCodecMethod
from roi_trt.bench.provenance import COLUMNS as PROVENANCE
from roi_trt.bench.report import format_latency, load_paper, plot, table, unit_for
from roi_trt.bench.results import write_rows
from roi_trt.bench.stats import summarize
from roi_trt.cli import main
from roi_trt.codec import open_codec
from roi_trt.errors import OutputExistsError
from roi_trt.samples import sample_photos


def test_summary_statistics_match_direct_computation():
    samples = list(np.random.default_rng(0).gamma(2.0, 0.01, size=37))
    s = summarize(samples)
    assert s["n"] == 37
    assert s["mean"] == pytest.approx(statistics.mean(samples))
    assert s["std"] == pytest.approx(statistics.stdev(samples))  # sample std, ddof = 1
    assert s["min"] == min(samples)
    assert s["median"] == pytest.approx(statistics.median(samples))
    assert s["p95"] == pytest.approx(float(np.percentile(samples, 95)))


@pytest.fixture(scope="module")
def images():
    return load_images(sample_photos()[:2], 64)


def test_images_are_resized_with_antialiasing(images):
    assert all(rgb.shape == (64, 64, 3) for _, rgb in images)
    original = np.asarray(Image.open(sample_photos()[0]).convert("RGB"))
    naive = original[:: original.shape[0] // 64, :: original.shape[1] // 64][:64, :64]
    # antialiased: much smoother than nearest-neighbour subsampling
    assert np.abs(np.diff(images[0][1].astype(int), axis=1)).mean() < np.abs(np.diff(naive.astype(int), axis=1)).mean()


def test_measure_pools_all_runs_of_all_images(images, tmp_path):
    methods = [PillowCodecMethod("jpeg", 5), PillowCodecMethod("avif", 10)]
    rows, complete = measure(methods, images, repeats=3, warmup=1)
    assert complete and len(rows) == 4
    for row in rows:
        assert row["n"] == 6 and row["images"] == 2  # 2 images x 3 repeats, pooled
        assert row["min_s"] <= row["median_s"] <= row["p95_s"] and row["min_s"] <= row["mean_s"]
    jpeg_bpp = [len(PillowCodecMethod("jpeg", 5).encode(Image.fromarray(rgb))[0]) * 8 / 64 ** 2 for _, rgb in images]
    assert rows[0]["bpp_mean"] == pytest.approx(np.mean(jpeg_bpp))
    assert rows[0]["bpp_std"] == pytest.approx(np.std(jpeg_bpp, ddof=1))

    path = str(tmp_path / "r.csv")
    write_csv(path, rows, environment(2, 64), complete)
    with open(path) as f:
        assert tuple(next(csv.reader(f))) == FIELDS
    back = read_csv(path)
    assert back[0]["mean_s"] == pytest.approx(rows[0]["mean_s"]) and back[0]["complete"] == "1"


def test_decode_returns_fully_decoded_pixels(images):
    for codec in ("jpeg", "avif"):
        method = PillowCodecMethod(codec, 10)
        data, encoded = method.encode(method.prepare(images[0][1]))
        pixels = method.decode(encoded)
        assert pixels.shape == (64, 64, 3)
        np.testing.assert_array_equal(pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_time_budget_stops_with_valid_partial_results(images):
    methods = [PillowCodecMethod("jpeg", 1), PillowCodecMethod("jpeg", 10)]
    rows, complete = measure(methods, images, repeats=2, warmup=0, budget_s=1e-9)
    assert not complete
    assert [(r["config"], r["stage"], r["images"], r["n"]) for r in rows] == [("q1", "encode", 1, 2), ("q1", "decode", 1, 2)]


def test_our_codec_method_round_trips(images, export_dir):
    method = RoiCodecMethod(open_codec(export_dir, backend="onnxruntime"))
    assert method.config == "128-2"
    payload, encoded = method.encode(method.prepare(images[0][1]))
    assert method.decode(encoded).shape == (64, 64, 3) and len(payload) > 0


def test_units_follow_the_paper():
    assert unit_for(0.634) == ("s", 1.0) and unit_for(0.239)[0] == "s"
    assert unit_for(0.1341)[0] == "ms" and unit_for(0.00403)[0] == "ms"
    assert unit_for(0.000633)[0] == "µs"
    assert format_latency(0.02143, 0.00046, 0.02081) == "21.43 ± 0.46 (min 20.81) ms"


def synthetic_rows():
    rows = []
    for method, config, backend, mean in (("jpeg", "q5", "pillow", 0.0006), ("avif", "q5", "pillow", 0.08),
                                          ("roi-codec", "128-2", "onnxruntime", 0.12), ("roi-codec", "128-2", "torch-compressai", 0.2)):
        for stage in ("encode", "decode"):
            rows.append(dict(device="cpu", method=method, config=config, backend=backend, stage=stage, mean_s=mean,
                             std_s=mean / 10, min_s=mean * 0.9, median_s=mean, p95_s=mean * 1.2, bpp_mean=0.3,
                             bpp_std=0.05, cpu="Test CPU", threads=2))
    return rows


def test_report_table_and_plot(tmp_path):
    rows = synthetic_rows()
    lines = table(rows, load_paper())
    text = "\n".join(lines)
    assert "device: cpu (Test CPU, 2 threads)" in text
    i = next(k for k, l in enumerate(lines) if l.startswith("(128, 2) onnxruntime") and "encode" in l)
    assert "120.0 ± 12.0 (min 108.0) ms" in lines[i]
    assert "vs Jetson Nano 4GB GPU (paper)" in lines[i + 1] and "ours/paper 0.50x" in lines[i + 1]
    assert "vs EPYC 7742 CPU (paper)" in text and "600.0 ± 60.0 (min 540.0) µs" in text
    path = tmp_path / "fig.png"
    plot(rows, str(path))
    assert Image.open(str(path)).size[0] > 600


def test_cli_latency_and_report(tmp_path, export_dir):
    out = str(tmp_path / "lat.csv")
    photo = sample_photos()[0]
    result = CliRunner().invoke(main, ["bench", "latency", photo, "--models", export_dir + ",128-2", "--backends",
                                       "onnxruntime,torch", "--codecs", "jpeg", "--qualities", "1",
                                       "--repeats", "2", "--size", "64", "-o", out])
    assert result.exit_code == 0, result.output
    assert "torch: skipped" in result.output and "the torch backend needs a checkpoint" in result.output
    rows = read_csv(out)
    assert {(r["backend"], r["stage"]) for r in rows} >= {("onnxruntime", "encode"), ("torch-compressai", "decode"), ("pillow", "encode")}
    report = CliRunner().invoke(main, ["bench", "report", out, "--compare", "paper", "--plot", str(tmp_path / "f.png")])
    assert report.exit_code == 0, report.output
    assert "ours/paper" in report.output and (tmp_path / "f.png").exists()
    bad = CliRunner().invoke(main, ["bench", "report", photo])
    assert bad.exit_code == 1 and "not a latency results file" in bad.output


def test_results_are_never_replaced_without_force_and_carry_provenance_on_every_row(tmp_path):
    path = str(tmp_path / "r.csv")
    write_rows(path, ["case", "seconds"], [{"case": "a", "seconds": 1.5}, {"case": "b", "seconds": 2.0}], {"threads": 2})
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["case", "seconds", "threads"] and set(PROVENANCE) <= set(rows[0])
    for row in rows:
        assert row["threads"] == "2" and row["roi_trt"] == roi_trt.__version__ and row["cores"] == str(os.cpu_count())
        assert row["numpy"] == np.__version__ and row["cpu"] and row["timestamp"]
    with pytest.raises(OutputExistsError):
        write_rows(path, ["case"], [{"case": "c"}])
    assert open(path).read().count("\n") == 3  # left alone
    write_rows(path, ["case"], [{"case": "c"}], replace=True)
    assert [r["case"] for r in csv.DictReader(open(path))] == ["c"]


def _git(tree, *args):
    subprocess.check_call(["git", "-C", str(tree)] + list(args), stdout=subprocess.DEVNULL)


def test_commit_names_the_tree_and_marks_uncommitted_changes(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    (tree / "benchmarks" / "results").mkdir(parents=True)
    (tree / "code.py").write_text("a = 1\n")
    (tree / "benchmarks" / "results" / "r.csv").write_text("x\n")
    monkeypatch.setattr(provenance, "TREE", str(tree))
    assert provenance.commit() == ""  # not a checkout
    _git(tree, "init", "-q")
    _git(tree, "add", ".")
    _git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    head = subprocess.check_output(["git", "-C", str(tree), "rev-parse", "HEAD"], universal_newlines=True).strip()
    assert provenance.commit() == head
    (tree / "benchmarks" / "results" / "r.csv").write_text("y\n")  # a rerun's output: the code is the same
    (tree / "new.py").write_text("")  # untracked
    assert provenance.commit() == head
    (tree / "code.py").write_text("a = 2\n")
    assert provenance.commit() == head + "-dirty"
    monkeypatch.setattr(provenance, "TREE", str(tree / "benchmarks"))  # inside another checkout: not its own
    assert provenance.commit() == ""


def test_library_versions_come_from_what_ran_or_what_is_installed():
    assert provenance.library_version("numpy", ("numpy",)) == np.__version__  # imported
    assert provenance.installed_version(("pytest",)) == pytest.__version__  # read from its dist-info
    assert provenance.installed_version(("no-such-distribution",)) == ""
    # a torch-free run names the installed torch without loading it
    code = "import sys; from roi_trt.bench.provenance import provenance; print(provenance()['torch'], 'torch' in sys.modules, sep='|')"
    version, loaded = subprocess.check_output([sys.executable, "-c", code], universal_newlines=True).strip().split("|")
    assert loaded == "False" and version == provenance.installed_version(("torch",))


def test_every_benchmark_script_writes_through_the_results_writer():
    benchmarks = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    scripts = [p for p in glob.glob(os.path.join(benchmarks, "*.py")) if not p.endswith("tables.py")]
    assert len(scripts) >= 8
    for script in scripts:
        tree = ast.parse(open(script).read())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "write_rows" in names and "parse_arguments" in names, script
        assert not names & {"DictWriter", "writer", "atomic_output"}, script  # no CSV written by hand


def test_a_benchmark_refuses_an_output_it_could_not_write_before_measuring(tmp_path, capsys):
    import argparse

    from roi_trt.bench.results import output_arguments, parse_arguments

    def parse(*argv):
        parser = argparse.ArgumentParser()
        output_arguments(parser, "results.csv")
        with pytest.raises(SystemExit) as exit:
            parse_arguments(parser, list(argv))
        assert exit.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    existing = tmp_path / "r.csv"
    existing.write_text("earlier results")
    assert parse("-o", str(existing)).endswith("{} exists (--force replaces it)".format(existing))
    assert "/sys/kernel/r.csv: cannot be written" in parse("-o", "/sys/kernel/r.csv")  # read-only, even for root
    assert existing.read_text() == "earlier results"
