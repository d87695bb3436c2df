"""What roi-trt keeps on disk, torch-free (Python 3.6): the one module that writes, reads and checks it.

- An **export directory** (`roi-trt export`): `manifest.json`, the entropy tables `entropy.npz` and the
  ONNX files of both variants. The manifest records which variant each runtime uses, so no backend
  hard-codes it: `variants` names the files of each form, `runtimes` lists per runtime
  `[min_version, variant]` pairs, newest first; a runtime takes the first pair its version reaches.
- An **engine directory** (`roi-trt build`): an export's manifest and entropy tables beside TensorRT
  engines (`<part>.<gdn mode>.engine`), each with a JSON sidecar (`<engine>.json`) that records what it
  was built from, with and for. An engine is executable code: its sidecar is checked (hash, model)
  before TensorRT is even imported.
- A **Triton model repository** (`roi-trt serve repo`), marked as ours by a marker file.
- **Replacing a directory** (exports, repositories) happens one way: staged beside the target, swapped
  in once complete, the old one restored on failure (and after a crash, on the next write), concurrent
  writers serialized by a lock file beside the target (`.<name>.lock`, there only while one writes).
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import tempfile
import threading

import numpy as np

from .errors import EngineError, ModelError
from .fileio import atomic_output, default_mode
from .optional import version_tuple
from .spec import CDF_PRECISION


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, obj, replace=True):
    with atomic_output(path, replace) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def copy_file_atomic(source, target):
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)


# -- export directories ------------------------------------------------------------------------------

FORMAT = "roi-trt-export"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ENTROPY_TABLES = "entropy.npz"
CUSTOM_OP, STANDARD_OPS = "custom-op", "standard-ops"
VARIANTS = {
    CUSTOM_OP: {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    STANDARD_OPS: {"encoder": "encoder.std.onnx", "decoder": "decoder.std.onnx"},
}
ONNX_FILES = [name for variant in VARIANTS.values() for name in variant.values()]
# ONNX Runtime 1.10 (the last for Python 3.6) rejects GDN1 as an unknown op; releases from 1.16 inline
# local functions (checked with 1.31; earlier ones are given the standard-ops form to be safe).
# TensorRT builds start from the custom-op file and rewrite it per `--gdn` mode (roi_trt.build.engine).
RUNTIMES = {
    "onnxruntime": [["1.16", CUSTOM_OP], ["0", STANDARD_OPS]],
    "tensorrt": [["0", CUSTOM_OP]],
}
# What makes a directory a model of its own: an engine directory holds these beside its engines.
MODEL_FILES = (MANIFEST, ENTROPY_TABLES)


def read_manifest(export_dir):
    path = os.path.join(export_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except OSError:
        raise ModelError("{}: not an export directory (no {})".format(export_dir, MANIFEST)) from None
    except ValueError as exc:
        raise ModelError("{}: unreadable manifest ({})".format(path, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError("{}: not a roi-trt export manifest".format(path))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError("{}: export format version {!r}, this roi-trt reads {}: export the model again".format(
            path, manifest.get("format_version"), FORMAT_VERSION))
    return manifest


def is_export(path):
    """Only an empty directory or an earlier export may be replaced by an export (never a user's other files)."""
    if not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    return not names or (MANIFEST in names and names <= set(ONNX_FILES) | set(MODEL_FILES))


def copy_model_files(export_dir, target_dir):
    """The export's manifest and entropy tables into `target_dir` (each atomically): what makes an engine
    directory a MODEL of its own."""
    for name in MODEL_FILES:
        copy_file_atomic(os.path.join(export_dir, name), os.path.join(target_dir, name))


def variant_for(manifest, runtime, version):
    """The ONNX variant the manifest assigns to `runtime` at `version` (a version string)."""
    rules = manifest["runtimes"].get(runtime)
    if not rules:
        raise ModelError("the export names no ONNX variant for {}".format(runtime))
    for min_version, variant in rules:
        if version_tuple(version) >= version_tuple(min_version):
            return variant
    raise ModelError("the export needs {} >= {}".format(runtime, rules[-1][0]))


class EntropyTables(object):
    """Per-channel quantized CDFs of the factorized prior, as CompressAI's EntropyBottleneck holds them."""

    def __init__(self, quantized_cdf, cdf_length, offset, medians):
        self.quantized_cdf = np.ascontiguousarray(quantized_cdf, np.int32)
        self.cdf_length = np.ascontiguousarray(cdf_length, np.int32).reshape(-1)
        self.offset = np.ascontiguousarray(offset, np.int32).reshape(-1)
        self.medians = np.ascontiguousarray(medians, np.float32).reshape(-1)
        self.validate()

    @property
    def channels(self):
        return self.cdf_length.shape[0]

    def validate(self):
        """Reject tables the coder cannot use safely (zero frequencies would divide by zero)."""
        cdf, lengths = self.quantized_cdf, self.cdf_length
        if cdf.ndim != 2 or not (cdf.shape[0] == len(lengths) == len(self.offset) == len(self.medians)):
            raise ModelError("entropy tables have inconsistent shapes")
        if lengths.min() < 3 or lengths.max() > cdf.shape[1]:
            raise ModelError("entropy tables: CDF lengths out of range")
        for c in range(cdf.shape[0]):
            row = cdf[c, : lengths[c]].astype(np.int64)
            if row[0] != 0 or row[-1] != 1 << CDF_PRECISION or np.any(np.diff(row) <= 0):
                raise ModelError("entropy tables: CDF of channel {} is not strictly increasing 0..2^16".format(c))

    def save(self, path):
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    quantized_cdf=self.quantized_cdf,
                    cdf_length=self.cdf_length,
                    offset=self.offset,
                    medians=self.medians,
                    precision=np.int32(CDF_PRECISION),
                )

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["precision"]) != CDF_PRECISION:
                    raise ModelError("{}: unsupported CDF precision {}".format(path, int(data["precision"])))
                return cls(data["quantized_cdf"], data["cdf_length"], data["offset"], data["medians"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError("{}: unreadable entropy tables ({})".format(path, exc)) from None


# -- engine directories ------------------------------------------------------------------------------

ENGINE_FORMAT, ENGINE_FORMAT_VERSION = "roi-trt-engine", 1
GDN_MODES = ("inline", "plugin")
ENGINE_SUFFIX = ".engine"


def engine_file_name(part, gdn_mode):
    return "{}.{}{}".format(part, gdn_mode, ENGINE_SUFFIX)


def sidecar_path(engine_path):
    return engine_path + ".json"


def engine_paths(engine_dir):
    """The engine files of an engine directory, by name."""
    return sorted(os.path.join(engine_dir, n) for n in os.listdir(engine_dir) if n.endswith(ENGINE_SUFFIX))


def is_engine_dir(path):
    return bool(engine_paths(path))


def find_engine(engine_dir, part):
    """The engine of `part` in an engine directory; with both GDN modes built, the plugin one."""
    for gdn_mode in reversed(GDN_MODES):
        path = os.path.join(engine_dir, engine_file_name(part, gdn_mode))
        if os.path.isfile(path):
            return path
    raise ModelError("{}: no {} engine (build it with `roi-trt build --part {}`)".format(engine_dir, part, part))


def write_engine(path, data, sidecar, replace=True):
    """The engine, then its sidecar (with the engine's name and SHA-256), each atomically: a reader that
    meets the new engine with the old sidecar refuses it on the hash."""
    sidecar = dict(sidecar, format=ENGINE_FORMAT, format_version=ENGINE_FORMAT_VERSION,
                   engine=os.path.basename(path), engine_sha256=hashlib.sha256(data).hexdigest())
    with atomic_output(path, replace) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    write_json_atomic(sidecar_path(path), sidecar)
    return sidecar


def read_sidecar(engine_path):
    path = sidecar_path(engine_path)
    if not os.path.isfile(engine_path):
        raise EngineError("no TensorRT engine {} (build it first)".format(engine_path))
    try:
        with open(path, encoding="utf-8") as f:
            sidecar = json.load(f)
    except (OSError, IOError):
        raise EngineError("{} has no sidecar {}: roi-trt loads only engines it built, with the sidecar written "
                          "beside them (rebuild it)".format(engine_path, os.path.basename(path))) from None
    except ValueError as exc:
        raise EngineError("{}: unreadable engine sidecar ({})".format(path, exc)) from None
    if not isinstance(sidecar, dict):
        raise EngineError("{}: unreadable engine sidecar (not a JSON object)".format(path))
    return sidecar


def short(value):
    """A long hex digest cut for messages."""
    return value[:12] + "..." if isinstance(value, str) and len(value) > 16 else value


def check_sidecar(sidecar, engine_sha256, expect, more_problems=()):
    """Refuse an engine (EngineError naming every difference) unless its sidecar matches the file's
    SHA-256 and the `expect`ed model facts (e.g. fingerprint, N, M, part); `more_problems` (what the
    runtime found wrong with this machine, see backends.tensorrt.loader) are named with them."""
    if sidecar.get("format") != ENGINE_FORMAT or sidecar.get("format_version") != ENGINE_FORMAT_VERSION:
        raise EngineError("{} is not a roi-trt engine sidecar of format version {}".format(
            sidecar.get("engine", "this"), ENGINE_FORMAT_VERSION))
    problems = []
    if sidecar.get("engine_sha256") != engine_sha256:
        problems.append("its SHA-256 is {}, the sidecar says {} (the file changed after the build)".format(
            short(engine_sha256), short(sidecar.get("engine_sha256"))))
    for key in sorted(expect):
        if sidecar.get(key) != expect[key]:
            problems.append("{} is {}, expected {}".format(key, short(sidecar.get(key)), short(expect[key])))
    problems += list(more_problems)
    if problems:
        raise EngineError("refusing TensorRT engine {}: {}".format(sidecar.get("engine", "?"), "; ".join(problems)))


def read_engine(engine_path):
    """(engine bytes, their SHA-256): read once, so what is checked is what gets deserialized."""
    with open(engine_path, "rb") as f:
        data = f.read()
    return data, hashlib.sha256(data).hexdigest()


def model_facts(model, part):
    """What an engine's sidecar must state to serve `part` of a resolved model."""
    return {"fingerprint": model.fingerprint, "N": model.N, "M": model.M, "part": part}


def checked_engine(model, part):
    """(engine path, its sidecar) of `part` in an engine directory, checked against its hash and the model
    (no TensorRT needed: what `serve repo` packages and what the runtime meets first)."""
    path = model.engine_path(part)
    sidecar = read_sidecar(path)
    check_sidecar(sidecar, file_sha256(path), model_facts(model, part))
    return path, sidecar


# -- Triton model repositories -----------------------------------------------------------------------

# Marks a directory `roi-trt serve repo` wrote: only such a directory is ever replaced (with --force).
REPOSITORY_MARKER = ".roi-trt-repository"


def is_repository(path):
    return os.path.isfile(os.path.join(path, REPOSITORY_MARKER))


def mark_repository(path):
    with open(os.path.join(path, REPOSITORY_MARKER), "w", encoding="utf-8") as f:
        f.write("written by roi-trt serve repo\n")


# -- replacing a directory ---------------------------------------------------------------------------

_locks = {}  # lock file -> [threading.RLock, depth, file descriptor]
_locks_guard = threading.Lock()


def _beside(target, kind):
    """Where the lock file, staging and old copies of `target` live: hidden names in its parent."""
    target = os.path.abspath(target)
    parent = os.path.realpath(os.path.dirname(target))
    return os.path.join(parent, ".{}.{}".format(os.path.basename(target), kind))


def _flock(path):
    """An open descriptor holding the exclusive flock of the file now at `path` (created if missing). A
    holder removes the file before releasing it, so a waiter that got the lock of a removed file tries again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, default_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, now = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return fd
        os.close(fd)


@contextlib.contextmanager
def directory_lock(target):
    """Hold the writers' lock of `target` (an flock on `.<name>.lock` beside it, so across processes, and
    a lock per thread here) while the block runs: re-entrant within a process; the lock file is gone after."""
    path = _beside(target, "lock")
    with _locks_guard:
        entry = _locks.setdefault(path, [threading.RLock(), 0, None])
    with entry[0]:
        if entry[1] == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            entry[2] = _flock(path)
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                os.unlink(path)
                os.close(entry[2])  # releases the flock
                entry[2] = None


def _recover(target):
    """Undo what a writer killed mid-swap left: its old copy back where the target was, stale stagings gone."""
    old = sorted(glob.glob(glob.escape(_beside(target, "old-")) + "*"))
    if old and not os.path.lexists(target):
        os.rename(old.pop(), target)
    for leftover in old + glob.glob(glob.escape(_beside(target, "new-")) + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _swap(staging, target):
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    old = tempfile.mkdtemp(prefix=os.path.basename(_beside(target, "old-")), dir=os.path.dirname(_beside(target, "")))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)  # the earlier directory stays as it was
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def replacing_dir(target, check=None):
    """Yield a staging directory beside `target`; when the block succeeds it becomes `target` whole.

    Writers of one target are serialized (`directory_lock`); `check(target)` runs under the lock when
    `target` exists and raises to refuse replacing it. A failure leaves `target` as it was; a writer
    killed between the two renames of the swap leaves the old copy beside it, restored by the next writer.
    """
    with directory_lock(target):
        _recover(target)
        if check is not None and os.path.lexists(target):
            check(target)
        staging = tempfile.mkdtemp(prefix=os.path.basename(_beside(target, "new-")),
                                   dir=os.path.dirname(_beside(target, "")))
        try:
            yield staging
            os.chmod(staging, default_mode(directory=True))
            _swap(staging, target)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)

