"""The edge boundary: every module is torch-free and Python 3.6-compatible (JetPack 4.6) unless it is
on the short torch-side list below. Checked statically (vermin), by importing each module with torch
unimportable, and under a real Python 3.6.

A venv with the Python 3.6 releases of the edge dependencies is kept in .cache/py36-venv; the package
itself is built and installed into it from this tree every run (so its C core really compiles there),
then every edge module is imported there and tests/edge runs against an export made here with torch.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest

from edge_export import make_edge_export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The only modules that may import torch (or need Python > 3.6): checkpoints, the torch model, emitting
# ONNX from its weights, export verification, training.
TORCH_SIDE = ("roi_trt/model.py", "roi_trt/checkpoint.py", "roi_trt/onnx_emit.py", "roi_trt/export.py", "roi_trt/train/")


def edge_modules():
    """Dotted names of every roi_trt module not on the torch side."""
    names = []
    for path in sorted(glob.glob(os.path.join(ROOT, "roi_trt", "**", "*.py"), recursive=True)):
        relative = os.path.relpath(path, ROOT).replace(os.sep, "/")
        if not relative.startswith(TORCH_SIDE):
            names.append(relative[: -len(".py")].replace("/", ".").replace(".__init__", ""))
    return names


def import_all(python, cwd):
    """Import every edge module in `python` with torch unimportable; -> the modules torch pulled in."""
    code = ("import importlib, sys; sys.modules['torch'] = None\n"
            "for name in sys.argv[1:]: importlib.import_module(name)\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'compressai') if sys.modules.get(m)))")
    importable = [m for m in edge_modules() if not m.endswith("__main__")]  # that one runs the CLI
    return run([python, "-c", code] + importable, cwd=cwd).strip()


def find_python36():
    # pyenv's own install first: its shim only works where pyenv selects 3.6
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3.6"))) + [shutil.which("python3.6")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def run(cmd, check=True, **kw):
    """stdout+stderr of cmd; with check, it must succeed, else it must fail."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert (proc.returncode == 0) == check, "{}\n{}".format(" ".join(cmd), proc.stdout[-6000:])
    return proc.stdout


def test_edge_modules_are_every_module_but_the_torch_side():
    modules = edge_modules()
    assert {"roi_trt.cli", "roi_trt.store", "roi_trt.codec", "roi_trt.onnx_rewrite", "roi_trt.backends.base"} <= set(modules)
    assert not [m for m in modules if m in ("roi_trt.model", "roi_trt.export") or m.startswith("roi_trt.train")]


def test_vermin_edge_modules_are_python36():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.isfile(vermin):  # a venv over the system's packages: vermin's script is the system's
        vermin = shutil.which("vermin") or vermin
    files = [m.replace(".", "/") + (".py" if os.path.isfile(os.path.join(ROOT, m.replace(".", "/") + ".py")) else "/__init__.py")
             for m in edge_modules()]
    out = run([vermin, "-t=3.6-", "--violations", "--no-tips", "--eval-annotations"] + files + ["tests/edge", "tests/conftest.py"],
              cwd=ROOT)
    assert "Minimum required versions: 3.6" in out


def test_edge_modules_import_without_torch(tmp_path):
    assert import_all(sys.executable, ROOT) == "[]"


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
    assert run([python, "-c", "import torch"], cwd=str(tmp_path), check=False)  # really absent there
    assert import_all(python, str(tmp_path)) == "[]"
    # click refuses to run under Python 3.6 with an ASCII locale (3.7+ coerce it): JetPack's is UTF-8, and so is this
    env = dict(os.environ, ROI_TRT_TEST_EXPORT=make_edge_export(str(tmp_path / "export")), LC_ALL="C.UTF-8", LANG="C.UTF-8")
    # cwd outside the tree, so the installed package (with its 3.6 build of the core) is what gets imported
    out = run([python, "-m", "pytest", os.path.join(ROOT, "tests", "edge"), "-q", "-p", "no:cacheprovider"], cwd=str(tmp_path), env=env)
    assert " passed" in out and "failed" not in out
