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
