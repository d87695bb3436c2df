"""TensorRT at run time (torch-free, Python 3.6): `api` (what each TensorRT release needs), `plugin` (the GDN1
plugin library), `loader` (an engine deserialized only after its sidecar vouches for it) and `runner` (the
backend). The builder (roi_trt.build) uses the first three; nothing here imports the builder.

tensorrt is imported in one place, `import_tensorrt`, and only when needed: from the Python installation,
or from a directory where NVIDIA's wheel or tarball was unpacked (`--tensorrt-home DIR` or
$ROI_TRT_TENSORRT_HOME), which is how offline GPU servers get it without pip.
"""

import glob
import os
import sys

from ...errors import RoiTrtError
from ...optional import require

HOME_VAR = "ROI_TRT_TENSORRT_HOME"


def _python_dirs(home):
    """Where an unpacked TensorRT keeps its `tensorrt` package: a directory per Python release (py312/), the
    tarball's python/ with its wheel unpacked there, wheels unpacked at the top (`pip install --target`), or a
    site-packages tree."""
    version = "{}{}".format(*sys.version_info[:2])
    candidates = [os.path.join(home, "py" + version), os.path.join(home, "python"), home]
    candidates += sorted(glob.glob(os.path.join(home, "lib", "python3*", "site-packages")))
    return [d for d in candidates if os.path.isfile(os.path.join(d, "tensorrt", "__init__.py"))]


def _load_libraries(directory):
    """Load every shared library of `directory` into the process for all to see (RTLD_GLOBAL), in the order
    their dependencies allow: the bindings' own dlopen of libnvinfer, and libnvinfer's of its builder
    resource, then find them by soname without LD_LIBRARY_PATH (which a running process cannot change)."""
    import ctypes

    pending = sorted(p for p in glob.glob(os.path.join(directory, "*.so*")) if os.path.isfile(p))
    errors = {}
    while pending:
        failed = []
        for path in pending:
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                failed.append(path)
                errors[path] = str(exc)
        if len(failed) == len(pending):
            raise RoiTrtError("TensorRT in {}: cannot load {} ({})".format(
                directory, os.path.basename(failed[0]), errors[failed[0]]))
        pending = failed


def use_home(home):
    """Make the TensorRT unpacked in `home` the one `import tensorrt` finds (its libraries loaded, its
    package first on sys.path); RoiTrtError naming what is missing."""
    if not os.path.isdir(home):
        raise RoiTrtError("TensorRT home {}: no such directory".format(home))
    python = _python_dirs(home)
    if not python:
        raise RoiTrtError("TensorRT home {}: no `tensorrt` package for Python {}.{} (looked in py{}{}/, python/, "
                          "the directory itself and lib/python3*/site-packages)".format(
                              home, sys.version_info[0], sys.version_info[1], *sys.version_info[:2]))
    # CUDA's own wheels unpacked beside it (cuDNN, cuBLAS: what libnvinfer_plugin links) first, then TensorRT's
    libraries = sorted(glob.glob(os.path.join(home, "nvidia", "*", "lib")))
    libraries += [d for d in (os.path.join(home, "lib"), os.path.join(home, "tensorrt_libs")) if os.path.isdir(d)]
    for directory in libraries:
        _load_libraries(directory)
    if python[0] not in sys.path:
        sys.path.insert(0, python[0])


def import_tensorrt(purpose):
    """The tensorrt module for `purpose` (e.g. 'roi-trt build'): from $ROI_TRT_TENSORRT_HOME when set (what
    `--tensorrt-home` sets), else the installed one (MissingDependency naming what to install)."""
    home = os.environ.get(HOME_VAR)
    if home and "tensorrt" not in sys.modules:
        use_home(home)
    trt = require("tensorrt", purpose)
    if home and not os.path.realpath(os.path.dirname(trt.__file__)).startswith(os.path.realpath(home) + os.sep):
        raise RoiTrtError("tensorrt was already imported from {}, not from the TensorRT home {}".format(
            os.path.dirname(trt.__file__), home))
    return trt
