"""Atomic file output: readers never see a half-written file, failures leave nothing behind, and an
existing file is replaced only when the caller says so; outputs checked before the work that makes them."""

import contextlib
import errno
import os
import shutil
import tempfile

from .errors import OutputExistsError, RoiTrtError, UsageError

_STATUS = "/proc/self/status"  # Linux: the process's umask, among others


def _umask():
    """The process umask, read without changing it (os.umask sets it, for a moment, for every thread): Linux
    says it in /proc/self/status; elsewhere a file created in a private directory shows its effect."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    probe_dir = tempfile.mkdtemp()
    try:
        fd = os.open(os.path.join(probe_dir, "probe"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777)
        mode = os.fstat(fd).st_mode & 0o777
        os.close(fd)
        return 0o777 & ~mode
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def default_mode(directory=False):
    """Permissions a plain open()/mkdir() would give (mkstemp/mkdtemp create owner-only files)."""
    return (0o777 if directory else 0o666) & ~_umask()


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


def _naming(exc, path):
    """The OSError `exc` about `path` (the output as given) rather than its temporary name or directory."""
    return OSError(exc.errno, exc.strerror or str(exc), path)


@contextlib.contextmanager
def atomic_output(path, replace=True):
    """Yield a temporary path in the target's directory; move it to `path` on success.

    With replace=False an existing `path` is left alone and OutputExistsError raised. Errors in creating,
    writing (to the temporary path) or publishing it name `path`.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=directory)
    except OSError as exc:
        raise _naming(exc, path) from None
    os.close(fd)
    try:
        try:
            yield tmp
        except OSError as exc:  # writing the temporary file (a write error names no file)
            if exc.filename not in (tmp, None):
                raise
            raise _naming(exc, path) from None
        try:
            os.chmod(tmp, default_mode())
            _publish(tmp, path, replace)
        except OutputExistsError:
            raise
        except OSError as exc:
            raise _naming(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def check_output(path, replace=False, directory=False, beside=False):
    """Refuse, before the work that makes it, an output that could not be written: `path` is a file
    (refused if it is a directory, or exists without `replace`) or, with `directory`, a directory files
    are written into (refused if it is something else); `beside`: the directory is also replaced whole or
    locked from its parent (artifacts.replacing_dir, directory_lock), which must take new entries too.
    Where entries are made (the directory itself if it exists, else the nearest existing ancestor) a file
    is made and removed, so read-only filesystems count too. Errors name `path` as given."""
    path = os.fspath(path)
    if directory:
        if os.path.exists(path) and not os.path.isdir(path):
            raise RoiTrtError("{}: exists and is not a directory".format(path))
    elif os.path.isdir(path):
        raise RoiTrtError("{}: is a directory".format(path))
    elif os.path.lexists(path) and not replace:
        raise UsageError("{} exists (--force replaces it)".format(path))
    places = {_nearest_existing(path if directory else os.path.dirname(os.path.abspath(path)))}
    if beside:
        places.add(_nearest_existing(os.path.dirname(os.path.abspath(path))))
    for where in sorted(places):
        if not os.path.isdir(where):
            raise RoiTrtError("{}: cannot be created ({} is not a directory)".format(path, where))
        try:
            fd, probe = tempfile.mkstemp(prefix=".", suffix=".probe", dir=where)
        except OSError as exc:
            raise RoiTrtError("{}: cannot be written ({})".format(path, exc.strerror or exc)) from None
        os.close(fd)
        os.unlink(probe)


def save_png(fig, path, replace=True):
    """Save a matplotlib figure as PNG atomically."""
    with atomic_output(path, replace) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_bytes_atomic(path, data, replace=True):
    with atomic_output(path, replace) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def distinct_files(paths):
    """`paths` without repeats of one file (by real path), in their order, each as first given."""
    seen, out = set(), []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out
