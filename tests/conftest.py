# Shared by the Python 3.11 suite and the Python 3.6 edge suite: keep it torch-free and 3.6-compatible.
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # torch-side helpers live beside the tests
    sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    """A verified export of a (128, 2) model. Under Python 3.6 it comes from ROI_TRT_TEST_EXPORT (made by the
    Python 3.11 suite, which has torch); otherwise it is exported here."""
    given = os.environ.get("ROI_TRT_TEST_EXPORT")
    if given:
        return given
    from edge_export import make_edge_export

    return make_edge_export(str(tmp_path_factory.mktemp("edge") / "export"))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Exports made on first use go to a per-test cache, never to the user's."""
    monkeypatch.setenv("ROI_TRT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def photo():
    """A real photo, 1024 x 1024 (the bundled astronaut, mirrored and stacked)."""
    import numpy as np

    from roi_trt.imageio import load_rgb
    from roi_trt.samples import sample_photos

    rgb, _ = load_rgb(sample_photos()[0])
    return np.concatenate([np.concatenate([rgb, rgb[:, ::-1]], axis=1)] * 2, axis=0)
