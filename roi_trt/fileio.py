"""Atomic file output: readers never see a half-written file, failures leave nothing behind, and an
existing file is replaced only when the caller says so."""

import contextlib
import errno
import os
import tempfile

from .errors import OutputExistsError


def default_mode(directory=False):
    """Permissions a plain open()/mkdir() would give (mkstemp/mkdtemp create owner-only files)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _publish(tmp, path, replace):
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if `path` exists, even one created a moment ago by another process
    except FileExistsError:
        raise OutputExistsError("{} exists (--force replaces it)".format(path)) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(path):  # a filesystem without hard links: check, then rename
            raise OutputExistsError("{} exists (--force replaces it)".format(path)) from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path, replace=True):
    """Yield a temporary path in the target's directory; move it to `path` on success.

    With replace=False an existing `path` is left alone and OutputExistsError raised.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, default_mode())
        _publish(tmp, path, replace)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_png(fig, path, replace=True):
    """Save a matplotlib figure as PNG atomically."""
    with atomic_output(path, replace) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_bytes_atomic(path, data, replace=True):
    with atomic_output(path, replace) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
