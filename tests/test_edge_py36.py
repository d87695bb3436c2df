"""The edge runtime under a real Python 3.6 (JetPack 4.6's), plus vermin as a quick static check.

A venv with the Python 3.6 releases of the edge dependencies is kept in .cache/py36-venv; the package
itself is built and installed into it from this tree every run (so its C core really compiles there),
then tests/edge runs against an export made here with torch.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest

from edge_export import make_edge_export
from roi_trt.samples import sample_photos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDGE_MODULES = [
    "roi_trt/__init__.py", "roi_trt/errors.py", "roi_trt/fileio.py", "roi_trt/manifest.py", "roi_trt/entropy.py",
    "roi_trt/bitstream.py", "roi_trt/imageio.py", "roi_trt/codec.py", "roi_trt/samples.py", "roi_trt/demo.py",
    "roi_trt/cli.py", "roi_trt/backends", "roi_trt/bench", "tests/edge",
    "tests/conftest.py",
]


def find_python36():
    # pyenv's own install first: its shim only works where pyenv selects 3.6
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3.6"))) + [shutil.which("python3.6")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def run(cmd, **kw):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert proc.returncode == 0, "{}\n{}".format(" ".join(cmd), proc.stdout[-6000:])
    return proc.stdout


def test_vermin_edge_modules_are_python36():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    out = run([vermin, "-t=3.6-", "--violations", "--no-tips", "--eval-annotations"] + EDGE_MODULES, cwd=ROOT)
    assert "Minimum required versions: 3.6" in out


@pytest.fixture(scope="module")
def py36_venv():
    python36 = find_python36()
    if python36 is None:
        pytest.skip("no Python 3.6 interpreter (pyenv install 3.6.15 to run the edge suite as JetPack 4.6 would)")
    venv = os.path.join(ROOT, ".cache", "py36-venv")
    requirements = os.path.join(ROOT, "tests", "edge", "requirements-py36.txt")
    stamp = os.path.join(venv, "requirements.stamp")
    wanted = open(requirements).read() + open(os.path.join(ROOT, "jetson", "requirements.txt")).read()
    if not (os.path.exists(stamp) and open(stamp).read() == wanted):
        shutil.rmtree(venv, ignore_errors=True)
        run([python36, "-m", "venv", venv])
        run([os.path.join(venv, "bin", "pip"), "install", "-q", "--upgrade", "pip<22"])  # venv pip 18 cannot read manylinux2014 tags
        run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r", requirements], cwd=os.path.dirname(requirements))
        with open(stamp, "w") as f:
            f.write(wanted)
    run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-deps", "--force-reinstall", ROOT])
    return os.path.join(venv, "bin", "python")


def test_edge_suite_under_python36(py36_venv, tmp_path):
    python = py36_venv
    assert run([python, "-c", "import sys, roi_trt._rans; print(sys.version_info[:2])"], cwd=str(tmp_path)).strip() == "(3, 6)"
    out = run([python, "-c", "import sys, roi_trt.cli, roi_trt.codec; print('torch' in sys.modules)"], cwd=str(tmp_path))
    assert out.strip() == "False"
    env = dict(os.environ, ROI_TRT_TEST_EXPORT=make_edge_export(str(tmp_path / "export")), ROI_TRT_TEST_PHOTO=sample_photos()[0])
    # cwd outside the tree, so the installed package (with its 3.6 build of the core) is what gets imported
    out = run([python, "-m", "pytest", os.path.join(ROOT, "tests", "edge"), "-q", "-p", "no:cacheprovider"], cwd=str(tmp_path), env=env)
    assert " passed" in out and "failed" not in out
