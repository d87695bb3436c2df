"""`manifest.json` of an export directory and the entropy tables beside it (torch-free, Python 3.6)."""

import hashlib
import json
import os

import numpy as np

from .errors import ModelMismatchError
from .fileio import atomic_output

FORMAT = "roi-trt-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENTROPY_TABLES = "entropy.npz"
PRECISION = 16  # CompressAI's rANS probability precision (bits)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, obj):
    with atomic_output(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def read_manifest(export_dir):
    path = os.path.join(export_dir, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except OSError:
        raise ModelMismatchError("{}: not an export directory (no {})".format(export_dir, MANIFEST)) from None
    except ValueError as exc:
        raise ModelMismatchError("{}: unreadable manifest ({})".format(path, exc)) from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelMismatchError(
            "{}: unsupported manifest (format {!r} version {!r})".format(
                path, manifest.get("format"), manifest.get("format_version")
            )
        )
    return manifest


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
            raise ModelMismatchError("entropy tables have inconsistent shapes")
        if lengths.min() < 3 or lengths.max() > cdf.shape[1]:
            raise ModelMismatchError("entropy tables: CDF lengths out of range")
        for c in range(cdf.shape[0]):
            row = cdf[c, : lengths[c]].astype(np.int64)
            if row[0] != 0 or row[-1] != 1 << PRECISION or np.any(np.diff(row) <= 0):
                raise ModelMismatchError("entropy tables: CDF of channel {} is not strictly increasing 0..2^16".format(c))

    def save(self, path):
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    quantized_cdf=self.quantized_cdf,
                    cdf_length=self.cdf_length,
                    offset=self.offset,
                    medians=self.medians,
                    precision=np.int32(PRECISION),
                )

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["precision"]) != PRECISION:
                    raise ModelMismatchError("{}: unsupported CDF precision {}".format(path, int(data["precision"])))
                return cls(data["quantized_cdf"], data["cdf_length"], data["offset"], data["medians"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelMismatchError("{}: unreadable entropy tables ({})".format(path, exc)) from None
