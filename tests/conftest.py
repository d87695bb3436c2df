# Shared by the Python 3.11 suite and the Python 3.6 edge suite: keep it torch-free and 3.6-compatible.
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def root():
    return ROOT


def pytest_configure(config):
    # torch-side helpers live beside the tests
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
