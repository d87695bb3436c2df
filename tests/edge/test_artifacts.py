"""The artifact layer's one way of replacing a directory: staged beside, swapped in whole, the old one kept
on failure and restored after a crash, writers serialized across processes; and the layering rule that
the TensorRT runtime imports nothing from the builder."""

import os
import subprocess
import sys
import textwrap

import pytest

from roi_trt.artifacts import directory_lock, is_export, replacing_dir
from roi_trt.fileio import default_mode


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def test_a_directory_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path):
    target = str(tmp_path / "out")
    with replacing_dir(target) as staging:
        write(os.path.join(staging, "a"), "first")
        assert not os.path.exists(target)  # nothing appears before the block is done
    assert read(os.path.join(target, "a")) == "first"
    with replacing_dir(target) as staging:
        write(os.path.join(staging, "b"), "second")
        assert read(os.path.join(target, "a")) == "first"  # readers see the old one until the swap
    assert os.listdir(target) == ["b"] and os.listdir(str(tmp_path)) == ["out"]
    assert os.stat(target).st_mode & 0o777 == default_mode(directory=True)  # not mkdtemp's owner-only mode


def test_a_failed_write_leaves_the_old_directory_as_it_was(tmp_path):
    target = str(tmp_path / "out")
    os.mkdir(target)
    write(os.path.join(target, "a"), "old")
    with pytest.raises(RuntimeError):
        with replacing_dir(target) as staging:
            write(os.path.join(staging, "a"), "half")
            raise RuntimeError("the writer failed")
    assert os.listdir(target) == ["a"] and read(os.path.join(target, "a")) == "old"
    assert os.listdir(str(tmp_path)) == ["out"]  # staging and lock file gone


def test_the_check_refuses_before_any_work(tmp_path):
    target = str(tmp_path / "photos")
    os.mkdir(target)
    write(os.path.join(target, "holiday.jpg"), "a user's file")

    def refuse(path):
        if not is_export(path):
            raise ValueError("not an earlier export")

    with pytest.raises(ValueError, match="not an earlier export"):
        with replacing_dir(target, refuse):
            pytest.fail("the block must not run")
    assert os.listdir(target) == ["holiday.jpg"]


def test_a_writer_killed_mid_swap_loses_nothing(tmp_path):
    """The swap renames the old directory aside, then the new one in: killed in between, the next writer
    finds the old copy and restores it before anything else (and clears stale stagings)."""
    target = str(tmp_path / "out")
    old = str(tmp_path / ".out.old-x1y2")
    os.mkdir(old)
    write(os.path.join(old, "a"), "kept")
    os.mkdir(str(tmp_path / ".out.new-z3"))  # a staging its killed writer left
    seen = []
    with replacing_dir(target, lambda path: seen.append(read(os.path.join(path, "a")))) as staging:
        write(os.path.join(staging, "a"), "new")
    assert seen == ["kept"]  # restored before the check ran
    assert read(os.path.join(target, "a")) == "new" and os.listdir(str(tmp_path)) == ["out"]


WRITER = textwrap.dedent("""
    import os, sys, time
    from roi_trt.artifacts import replacing_dir
    target, log, name = sys.argv[1:]
    with replacing_dir(target) as staging:
        with open(log, "a") as f:
            f.write(name + " start\\n")
        time.sleep(0.5)
        open(os.path.join(staging, name), "w").close()
        with open(log, "a") as f:
            f.write(name + " end\\n")
""")


def test_writers_in_several_processes_take_turns(tmp_path):
    target, log = str(tmp_path / "out"), str(tmp_path / "log")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, target, log, name], cwd=str(tmp_path)) for name in "abc"]
    assert [w.wait(60) for w in writers] == [0, 0, 0]
    lines = read(log).split()
    events = list(zip(lines[::2], lines[1::2]))
    assert [kind for _, kind in events] == ["start", "end"] * 3
    assert all(events[i][0] == events[i + 1][0] for i in range(0, 6, 2))  # no writer started inside another's turn
    assert os.listdir(target) == [lines[-2]]  # the last writer's directory, whole
    assert sorted(os.listdir(str(tmp_path))) == ["log", "out"]


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    target = str(tmp_path / "out")
    with directory_lock(target):
        with replacing_dir(target) as staging:  # what store does around an export
            write(os.path.join(staging, "a"), "x")
        assert os.path.exists(str(tmp_path / ".out.lock"))
    assert not os.path.exists(str(tmp_path / ".out.lock"))


def test_the_tensorrt_runtime_imports_nothing_from_the_builder(tmp_path):
    code = ("import sys, roi_trt.backends.tensorrt.runner, roi_trt.codec, roi_trt.serve.repository; "
            "print(sorted(m for m in sys.modules if m.startswith('roi_trt.build')))")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=str(tmp_path), universal_newlines=True)
    assert out.strip() == "[]"
