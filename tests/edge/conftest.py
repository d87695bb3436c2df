# Edge suite: torch-free and Python 3.6-compatible (export_dir comes from tests/conftest.py).
import os
import shutil

import pytest


@pytest.fixture()
def other_model_export(export_dir, tmp_path):
    """The same files under another model's fingerprint: what a stream from a different model meets."""
    import json

    copy = str(tmp_path / "other")
    shutil.copytree(export_dir, copy)
    path = os.path.join(copy, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["fingerprint"] = "f" * 64
    with open(path, "w") as f:
        json.dump(manifest, f)
    return copy


@pytest.fixture(scope="session")
def photo():
    """A real photo, 1024 x 1024 (astronaut mirrored and stacked); under Python 3.6 its path comes from
    ROI_TRT_TEST_PHOTO, since scikit-image is not installed there."""
    import numpy as np

    from roi_trt.imageio import load_rgb
    from roi_trt.samples import sample_photos

    rgb, _ = load_rgb(os.environ.get("ROI_TRT_TEST_PHOTO") or sample_photos()[0])
    return np.concatenate([np.concatenate([rgb, rgb[:, ::-1]], axis=1)] * 2, axis=0)
