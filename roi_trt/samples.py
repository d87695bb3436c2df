"""Sample photos that ship offline inside scikit-image and matplotlib (found without importing them)."""

import importlib.util
import os

_SAMPLES = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/chelsea.png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)


def sample_photos():
    """Paths of the bundled sample photos that are installed here, in a fixed order."""
    found = []
    for package, relative in _SAMPLES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = os.path.join(list(spec.submodule_search_locations)[0], relative)
        if os.path.isfile(path):
            found.append(path)
    return found
