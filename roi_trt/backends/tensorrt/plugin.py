"""Load the GDN1 TensorRT plugin library (built from engines/) and register its creator.

onnx-tensorrt looks `roi_trt::GDN1` up under namespace "roi_trt", where the library's init function
registers it (REGISTER_TENSORRT_PLUGIN would use namespace "", where it is never found). tensorrt is
imported lazily, so this module imports without it.
"""

import collections
import ctypes
import os

from ...artifacts import file_sha256
from ...errors import PluginError
from ...spec import GDN1_OP, GDN1_PLUGIN_NAMESPACE, GDN1_PLUGIN_VERSION
from . import import_tensorrt

LIBRARY_NAME = "libroi_trt_gdn1.so"
ENV_VAR = "ROI_TRT_PLUGIN"
INIT_FUNCTION = "roiTrtInitPlugins"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEFAULT_PATH = os.path.join(_ROOT, "engines", "build", LIBRARY_NAME)

# path: the library loaded; sha256: its digest (engine sidecars record it); creator: TensorRT's creator.
Plugin = collections.namedtuple("Plugin", "path sha256 creator")


def locate(path=None):
    """The plugin library's real path: `path`, else $ROI_TRT_PLUGIN, else engines/build/ in this checkout."""
    if path:
        origin = "given path"
    elif os.environ.get(ENV_VAR):
        path, origin = os.environ[ENV_VAR], "$" + ENV_VAR
    else:
        path, origin = DEFAULT_PATH, "default location"
    if not os.path.isfile(path):
        raise PluginError("GDN1 plugin library not found: {} ({}); build it (engines/README.md) or set ${}".format(
            path, origin, ENV_VAR))
    return os.path.realpath(path)


def find_creator(trt):
    """The registered GDN1 creator, or None."""
    registry = trt.get_plugin_registry()
    # TensorRT 10+: get_creator also returns IPluginV3 creators; 8.x has only get_plugin_creator
    lookup = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    return lookup(GDN1_OP, GDN1_PLUGIN_VERSION, GDN1_PLUGIN_NAMESPACE)


def load_plugin(path=None):
    """Load the library (see `locate`), register its creator and check that TensorRT finds it: a Plugin."""
    trt = import_tensorrt("the GDN1 TensorRT plugin")  # first: the library needs the libnvinfer it loads
    path = locate(path)
    try:
        library = ctypes.CDLL(path)
    except OSError as exc:
        raise PluginError("cannot load GDN1 plugin library {}: {}".format(path, exc))
    try:
        init = getattr(library, INIT_FUNCTION)
    except AttributeError:
        raise PluginError("{} is not a GDN1 plugin library of roi-trt (it has no {})".format(path, INIT_FUNCTION))
    init.argtypes = [ctypes.c_void_p]
    init.restype = ctypes.c_bool
    # no logger: TensorRT's Python API gives no trt.Logger's C++ pointer; the library logs to TensorRT's
    # getLogger() or, where TensorRT has none, to stderr
    if not init(None):
        raise PluginError("{} could not register {}::{} (is another GDN1 plugin library loaded? the library's "
                          "reason is logged on stderr)".format(path, GDN1_PLUGIN_NAMESPACE, GDN1_OP))
    creator = find_creator(trt)
    if creator is None:
        raise PluginError("TensorRT {} does not find plugin {} version {} in namespace {} after loading {}".format(
            trt.__version__, GDN1_OP, GDN1_PLUGIN_VERSION, GDN1_PLUGIN_NAMESPACE, path))
    return Plugin(path, file_sha256(path), creator)
