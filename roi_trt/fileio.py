"""Atomic file output: readers never see a half-written file, failures leave nothing behind."""

import contextlib
import os
import tempfile


def default_mode(directory=False):
    """Permissions a plain open()/mkdir() would give (mkstemp/mkdtemp create owner-only files)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path in the target's directory; rename it over `path` on success."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_png(fig, path):
    """Save a matplotlib figure as PNG atomically."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_bytes_atomic(path, data):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
