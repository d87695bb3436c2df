"""Where a result came from: the code (roi-trt version, git commit of the tree), the machine (CPU, cores,
GPU), Python and the libraries that ran, and when. Every results CSV carries these columns on every row.

A library the run imported gives its own version (the one that was measured); any other gives the version
installed (what a benchmark's child processes load), read from the package metadata so that a torch-free
run never loads torch or TensorRT just to name them. Torch-free, Python 3.6.
"""

import os
import platform
import subprocess
import sys
import time
from collections import OrderedDict

# The source tree of the imported roi_trt (a git checkout when it is one).
TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What a rerun of one benchmark writes into; a result there does not make the measured code dirty.
RESULTS = "benchmarks/results"
# (column, module, distributions that install it)
LIBRARIES = (
    ("numpy", "numpy", ("numpy",)), ("torch", "torch", ("torch",)),
    ("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu")), ("tensorrt", "tensorrt", ("tensorrt",)),
    ("pillow", "PIL", ("Pillow",)), ("compressai", "compressai", ("compressai",)),
)
COLUMNS = ("roi_trt", "commit", "cpu", "cores", "gpu", "python") + tuple(c for c, _, _ in LIBRARIES) + ("timestamp",)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name():
    """The CUDA devices' names ('' without one), asked without creating a CUDA context."""
    from ..cuda import detect

    names = []
    for device in detect().devices:
        if device.name not in names:
            names.append(device.name)
    return "; ".join(names)


def _git(*args):
    return subprocess.check_output(("git", "-C", TREE) + args, stderr=subprocess.DEVNULL,
                                   universal_newlines=True, timeout=30).strip()


def commit():
    """The commit of the roi_trt tree that ran, '-dirty' when tracked files outside benchmarks/results differ
    from it; '' for an installed package (not a git checkout of its own)."""
    try:
        if os.path.realpath(_git("rev-parse", "--show-toplevel")) != os.path.realpath(TREE):
            return ""
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude){}".format(RESULTS))
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return ""
    return head + ("-dirty" if dirty else "")


def installed_version(distributions):
    """Version of the first of `distributions` installed on sys.path, from its dist-info or egg-info
    directory name ('' if none is)."""
    prefixes = tuple(d.replace("-", "_").lower() + "-" for d in distributions)
    for entry in sys.path:
        try:
            names = os.listdir(entry) if os.path.isdir(entry) else []
        except OSError:
            continue
        for name in names:
            lower = name.lower()
            if lower.startswith(prefixes) and lower.endswith((".dist-info", ".egg-info")):
                rest = name[name.index("-") + 1:].rsplit(".", 1)[0]
                return rest.split("-")[0]  # egg-info names go on with -py3.6
    return ""


def library_version(module, distributions):
    """Version of `module`: its own if this process imported it, else the installed one ('' if absent)."""
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", "") if loaded is not None else ""
    return str(version) or installed_version(distributions)


def provenance(libraries=()):
    """-> OrderedDict of COLUMNS, with a column per extra (column, module, distributions) of `libraries`
    before the timestamp."""
    from .. import __version__

    info = OrderedDict([("roi_trt", __version__), ("commit", commit()), ("cpu", cpu_model()),
                        ("cores", os.cpu_count()), ("gpu", gpu_name()), ("python", platform.python_version())])
    for column, module, distributions in LIBRARIES + tuple(libraries):
        info[column] = library_version(module, distributions)
    info["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return info
