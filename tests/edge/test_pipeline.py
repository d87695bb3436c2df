"""The batch pipeline: stages overlap, order is kept, one input's failure does not stop the rest,
a bug stops everything, and the items in flight stay bounded."""

import json
import threading
import time

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


def test_a_bug_stops_the_pipeline_and_reaches_the_caller():
    def broken(x):
        if x == 3:
            raise ValueError("bug")
        return x

    seen = []
    with pytest.raises(ValueError, match="bug"):
        for item, _ in run_stages(range(100), [broken]):
            seen.append(item)
    assert seen == [0, 1, 2]
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
    assert "cannot read image" in rows[2]["error"] and rows[-1]["summary"]["failed"] == 1
    assert [r["height"] for r in rows[:-1] if "height" in r] == [32, 48, 80, 96, 112]
