"""The batch pipeline: stages overlap, order is kept, one input's failure does not stop the rest,
a bug stops everything, and the items in flight stay bounded."""

import json
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roi_trt.cli import main
from roi_trt.errors import RoiTrtError
from roi_trt.pipeline import Failed, run_stages


def test_order_is_kept_and_failures_flow_through():
    def jitter(x):
        time.sleep(0.002 * (x % 3))
        return x

    def picky(x):
        if x % 4 == 1:
            raise RoiTrtError("odd one {}".format(x))
        return x * 10

    results = list(run_stages(range(12), [jitter, picky, jitter]))
    assert [item for item, _ in results] == list(range(12))
    for item, value in results:
        if item % 4 == 1:
            assert isinstance(value, Failed) and str(value.error) == "odd one {}".format(item)
        else:
            assert value == item * 10


def test_stages_overlap_and_stay_bounded():
    started, lock, in_flight = [], threading.Lock(), [0, 0]

    def first(x):
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        started.append(time.perf_counter())
        return x

    def slow(x):
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return x

    t0 = time.perf_counter()
    assert [v for _, v in run_stages(range(20), [first, slow], depth=2)] == list(range(20))
    assert in_flight[1] <= 2 + 2 + 1  # two queues of depth 2 plus the one in the slow stage
    assert started[5] - t0 < 20 * 0.02  # the first stage ran ahead while the slow one worked


def test_a_stage_in_several_threads_runs_them_at_once_and_keeps_order():
    lock, busy, most = threading.Lock(), [0], [0]

    def transform(x):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.001 * ((x * 7) % 5))  # later items often finish first
        with lock:
            busy[0] -= 1
        if x % 5 == 3:
            raise RoiTrtError("bad {}".format(x))
        return x * 10

    results = list(run_stages(range(40), [lambda x: x, transform, lambda x: x + 1], workers=[1, 3, 1]))
    assert [item for item, _ in results] == list(range(40))
    for item, value in results:
        assert (str(value.error) == "bad {}".format(item)) if item % 5 == 3 else value == item * 10 + 1
    assert most[0] == 3


def test_every_stage_needs_a_thread():
    for workers in ([1], [1, 0], [2, 1, 1]):
        with pytest.raises(ValueError, match="at least one thread for each of the 2 stages"):
            list(run_stages(range(3), [abs, abs], workers=workers))


def test_a_bug_stops_the_pipeline_and_reaches_the_caller():
    def broken(x):
        if x == 3:
            raise ValueError("bug")
        return x

    for workers in ([1], [3]):
        seen = []
        with pytest.raises(ValueError, match="bug"):
            for item, _ in run_stages(range(100), [broken], workers=workers):
                seen.append(item)
        assert seen == [0, 1, 2] if workers == [1] else seen == [0, 1, 2][: len(seen)]  # several: some still in flight
        time.sleep(0.3)
        assert threading.active_count() < 5  # its threads have ended


def test_encode_dir_keeps_order_and_reports_failures(export_dir, photo, tmp_path):
    names = []
    for i in range(6):
        name = "img{}.png".format(i)
        if i == 2:
            (tmp_path / name).write_bytes(b"not an image")
        else:
            Image.fromarray(photo[: 32 + 16 * i, :48]).save(str(tmp_path / name))
        names.append(str(tmp_path / name))
    result = CliRunner().invoke(main, ["encode", str(tmp_path), "-m", export_dir, "-o", str(tmp_path / "out"), "--json"])
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert result.exit_code == 1
    assert [r["file"] for r in rows[:-1]] == names
    assert "not an image" in rows[2]["error"] and rows[-1]["summary"]["failed"] == 1
    assert [r["height"] for r in rows[:-1] if "height" in r] == [32, 48, 80, 96, 112]


def test_a_batch_with_frames_side_by_side_writes_what_one_file_at_a_time_writes(export_dir, photo, tmp_path):
    from roi_trt.backends.onnxruntime import usable_cores

    if usable_cores() < 2:
        pytest.skip("one core: frames do not run side by side")
    (tmp_path / "in").mkdir()
    for i in range(4):
        Image.fromarray(photo[16 * i: 16 * i + 120, 8 * i: 8 * i + 144]).save(str(tmp_path / "in" / "p{}.png".format(i)))
    runner = CliRunner()
    assert runner.invoke(main, ["encode", str(tmp_path / "in"), "-m", export_dir, "-o", str(tmp_path / "roi")]).exit_code == 0
    assert runner.invoke(main, ["decode", str(tmp_path / "roi"), "-m", export_dir, "-o", str(tmp_path / "png")]).exit_code == 0
    for i in range(4):
        one = str(tmp_path / "one{}.roi".format(i))
        assert runner.invoke(main, ["encode", str(tmp_path / "in" / "p{}.png".format(i)), "-m", export_dir,
                                    "-o", one]).exit_code == 0
        assert (tmp_path / "roi" / "p{}.roi".format(i)).read_bytes() == open(one, "rb").read()
        assert runner.invoke(main, ["decode", one, "-m", export_dir, "-o", one + ".png"]).exit_code == 0
        batch = np.asarray(Image.open(str(tmp_path / "png" / "p{}.decoded.png".format(i))))
        assert np.array_equal(batch, np.asarray(Image.open(one + ".png")))
