"""`manifest.json` of an export directory and the entropy tables beside it (torch-free, Python 3.6).

The manifest records which ONNX variant each runtime uses, so no backend hard-codes it:
`variants` names the files of each form, `runtimes` lists per runtime `[min_version, variant]` pairs,
newest first; a runtime takes the first pair its version reaches.
"""

import hashlib
import json
import os

import numpy as np

from .errors import ModelError
from .fileio import atomic_output
from .spec import CDF_PRECISION

FORMAT = "roi-trt-export"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ENTROPY_TABLES = "entropy.npz"
CUSTOM_OP, STANDARD_OPS = "custom-op", "standard-ops"
VARIANTS = {
    CUSTOM_OP: {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    STANDARD_OPS: {"encoder": "encoder.std.onnx", "decoder": "decoder.std.onnx"},
}
# ONNX Runtime 1.10 (the last for Python 3.6) rejects GDN1 as an unknown op; releases from 1.16 inline
# local functions (checked with 1.31; earlier ones are given the standard-ops form to be safe).
# TensorRT builds start from the custom-op file and rewrite it per `--gdn` mode (roi_trt.build.engine).
RUNTIMES = {
    "onnxruntime": [["1.16", CUSTOM_OP], ["0", STANDARD_OPS]],
    "tensorrt": [["0", CUSTOM_OP]],
}


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, obj):
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def read_manifest(export_dir):
    path = os.path.join(export_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except OSError:
        raise ModelError("{}: not an export directory (no {})".format(export_dir, MANIFEST)) from None
    except ValueError as exc:
        raise ModelError("{}: unreadable manifest ({})".format(path, exc)) from None
    if manifest.get("format") != FORMAT:
        raise ModelError("{}: not a roi-trt export manifest".format(path))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError("{}: export format version {!r}, this roi-trt reads {}: export the model again".format(
            path, manifest.get("format_version"), FORMAT_VERSION))
    return manifest


def _version_tuple(text):
    return tuple(int(v) for v in text.split("+")[0].split(".")[:3] if v.isdigit())


def variant_for(manifest, runtime, version):
    """The ONNX variant the manifest assigns to `runtime` at `version` (a version string)."""
    rules = manifest["runtimes"].get(runtime)
    if not rules:
        raise ModelError("the export names no ONNX variant for {}".format(runtime))
    for min_version, variant in rules:
        if _version_tuple(version) >= _version_tuple(min_version):
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
