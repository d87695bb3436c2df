"""MODEL -> one resolved model: the single place where what users pass as a model is understood.

MODEL is nothing or `demo` (the demo shipped in the package: its export and its checkpoint), an export
directory, an engine directory (what `roi-trt build` writes: the export's manifest and entropy tables
beside TensorRT engines), a PyTorch checkpoint (exported into the cache on first use, which needs
torch), `paper:NAME` (the authors' released checkpoint, downloaded and verified once: roi_trt.pretrained)
or `N-M` (random weights of a configuration: latency only). The CLI, the codec, the benchmarks and the server
all resolve through `resolve`; torch is imported only when a checkpoint must be loaded or exported.
"""

import os
import re
import zipfile

from . import spec
from .errors import ModelError
from .artifacts import (
    ENTROPY_TABLES, MANIFEST, EntropyTables, directory_lock, file_sha256, find_engine, is_engine_dir, read_manifest,
    variant_for,
)
from .optional import require

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEMO_CHECKPOINT = os.path.join(DATA_DIR, "demo-128-2.pt")
DEMO_EXPORT = os.path.join(DATA_DIR, "demo-128-2")
_RANDOM = re.compile(r"^(\d+)-(\d+)$")


def cache_dir():
    return os.environ.get("ROI_TRT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "roi-trt"
    )


def is_torch_checkpoint(path):
    """torch.save's zip layout (an archive holding `*/data.pkl`) or its legacy pickle stream."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # pickle PROTO opcode


class ResolvedModel(object):
    """One model, whatever form it came in. Facts (N, M, fingerprint, fixed shape) come from its export
    when one exists, else from the torch model; the export is made on first use where needed."""

    def __init__(self, kind, label, export_dir=None, checkpoint=None, config=None, trust_pickle=False):
        self.kind, self.label = kind, label
        self.checkpoint, self.config, self.trust_pickle = checkpoint, config, trust_pickle
        self._export_dir = export_dir
        self._manifest = self._torch = self._key = self._fact_cache = None

    def __repr__(self):
        return "ResolvedModel({}, {})".format(self.kind, self.label)

    @property
    def name(self):
        """The label as a directory or Triton model name: letters, digits, '_' and '-' (`paper:128-2` ->
        `paper_128-2`)."""
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.label).strip("_") or "model"

    # -- export side (torch-free once the export exists)
    def _cache_key(self):
        if self._key is None:
            if self.kind == "checkpoint":
                stem = os.path.splitext(os.path.basename(self.checkpoint))[0]
                self._key = "{}-{}".format(stem, file_sha256(self.checkpoint)[:12])
            else:
                self._key = "random-{}-{}-seed0".format(*self.config)
        return self._key

    def has_export(self):
        if self._export_dir is None:
            candidate = os.path.join(cache_dir(), "exports", self._cache_key())
            try:
                self._manifest = read_manifest(candidate)
            except ModelError:  # none yet, or made by another roi-trt version: made anew on first use
                return False
            self._export_dir = candidate
        return True

    def export_dir(self):
        """The export directory; a checkpoint or random model is exported into the cache on first use (one
        process at a time: another that waited for the same export uses it)."""
        if not self.has_export():
            require("torch", "exporting {} (first use of a checkpoint)".format(self.label))
            from .export import export_model

            out = os.path.join(cache_dir(), "exports", self._cache_key())
            with directory_lock(out):
                if not self.has_export():
                    export_model(*self._load_torch(), out_dir=out)
                    self._export_dir = out
        return self._export_dir

    def manifest(self):
        if self._manifest is None:
            self._manifest = read_manifest(self.export_dir())
        return self._manifest

    def engine_path(self, part):
        """The TensorRT engine of `part` in an engine directory (artifacts.find_engine)."""
        if self.kind != "engine":
            raise ModelError("{} holds no TensorRT engines: build them with `roi-trt build`".format(self.label))
        return find_engine(self._export_dir, part)

    def onnx_file(self, part, runtime, version):
        """The ONNX file of `part` in the variant the export's manifest assigns to `runtime` `version`."""
        manifest = self.manifest()
        return os.path.join(self.export_dir(), manifest["variants"][variant_for(manifest, runtime, version)][part])

    def entropy_tables(self):
        if self.has_export():
            tables = EntropyTables.load(os.path.join(self._export_dir, ENTROPY_TABLES))
            if tables.channels != self.N:
                raise ModelError("{}: entropy tables do not match the manifest".format(self._export_dir))
            return tables
        from .model import entropy_tables

        return entropy_tables(self.torch_model()._bottleneck)

    # -- torch side
    def _load_torch(self):
        """-> (RoiAutoencoder, CheckpointInfo), loaded once."""
        if self._torch is None:
            if self.checkpoint is None and self.config is None:
                raise ModelError("{} is an export directory: the torch backend needs a checkpoint".format(self.label))
            require("torch", "loading {}".format(self.label))
            from .checkpoint import load_checkpoint, random_model

            loaded = load_checkpoint(self.checkpoint, self.trust_pickle) if self.checkpoint else random_model(*self.config)
            self._check_config(loaded[0].N, loaded[0].M)
            self._torch = loaded
        return self._torch

    def torch_model(self):
        return self._load_torch()[0]

    def checkpoint_info(self):
        return self._load_torch()[1]

    # -- facts
    def _facts(self):
        if self._fact_cache is None:
            if self.has_export():
                m = self.manifest()
                shape = m["shape"] and (m["shape"]["batch"], m["shape"]["height"], m["shape"]["width"])
                self._fact_cache = m["N"], m["M"], m["fingerprint"], shape
            else:
                from .model import fingerprint

                model = self.torch_model()
                self._fact_cache = model.N, model.M, fingerprint(model), None
            facts, self._fact_cache = self._fact_cache, None
            self._check_config(*facts[:2])
            self._fact_cache = facts
        return self._fact_cache

    def _check_config(self, N, M):
        """A model named by its configuration (N-M, paper:N-M) must be that configuration."""
        if self.config is not None and (N, M) != tuple(self.config):
            raise ModelError("{} is a ({}, {}) model, not ({}, {}) as its name says: the file is not that model "
                             "(remove {})".format(self.label, N, M, self.config[0], self.config[1], self.checkpoint))

    @property
    def N(self):
        return self._facts()[0]

    @property
    def M(self):
        return self._facts()[1]

    @property
    def fingerprint(self):
        return self._facts()[2]

    @property
    def fixed_shape(self):
        """(batch, height, width) of an export made with --fixed-shape, else None."""
        return self._facts()[3]

    @property
    def downsampling(self):
        return spec.downsampling(self.M)


def resolve(model=None, trust_pickle=False):
    """What users pass as MODEL -> ResolvedModel (an existing ResolvedModel is returned as it is).

    `trust_pickle` lets a checkpoint that pickles Python objects load (unpickling runs its code).
    """
    if isinstance(model, ResolvedModel):
        return model
    if model in (None, "demo"):
        return ResolvedModel("demo", "demo", export_dir=DEMO_EXPORT, checkpoint=DEMO_CHECKPOINT)
    from .pretrained import PREFIX, configuration, pull, release_name  # it imports this module (the cache)

    if model.startswith(PREFIX):  # the paper's released weights, fetched and verified once
        return ResolvedModel("checkpoint", model, checkpoint=pull(model), trust_pickle=trust_pickle,
                             config=configuration(release_name(model))[:2])
    label = os.path.splitext(os.path.basename(os.path.normpath(model)))[0]
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, MANIFEST)):
            raise ModelError("{}: not an export or engine directory (no {})".format(model, MANIFEST))
        return ResolvedModel("engine" if is_engine_dir(model) else "export", label, export_dir=model)
    if os.path.isfile(model):
        if not is_torch_checkpoint(model):
            raise ModelError("{}: not a model (expected 'demo', an export directory or a PyTorch checkpoint)".format(model))
        return ResolvedModel("checkpoint", label, checkpoint=model, trust_pickle=trust_pickle)
    m = _RANDOM.match(model)
    if m:
        return ResolvedModel("random", "{}-{} (random weights)".format(*m.groups()), config=(int(m.group(1)), int(m.group(2))))
    raise ModelError("{}: no such model (give 'demo', an export directory, a checkpoint, paper:NAME or N-M)".format(model))
