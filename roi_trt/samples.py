"""Sample photos shipped inside the package (sources and licences: data/photos/SOURCES.md)."""

import os

PHOTOS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "photos")
_NAMES = ("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "grace_hopper.jpg")


def sample_photos():
    """Paths of the bundled sample photos, in a fixed order (astronaut first: a face and a person)."""
    return [os.path.join(PHOTOS_DIR, name) for name in _NAMES]
