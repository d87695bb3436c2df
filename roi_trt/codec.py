"""Image <-> `.roi` stream: a backend's transforms plus the rANS entropy coder (torch-free, Python 3.6).

`open_codec` resolves what users pass as MODEL: nothing (the shipped demo checkpoint), an export
directory, or a checkpoint (exported once into the cache on first use, which needs torch).
"""

import os
import time
from collections import namedtuple

from . import bitstream
from .backends import backend_class
from .entropy import decode_latent, encode_latent
from .errors import BackendError, ModelMismatchError
from .imageio import pad_to_multiple, resize, to_nchw, to_rgb8
from .manifest import ENTROPY_TABLES, MANIFEST, EntropyTables, file_sha256, read_manifest

Timing = namedtuple("Timing", "transform entropy")


def cache_dir():
    return os.environ.get("ROI_TRT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "roi-trt"
    )


class Codec(object):
    def __init__(self, backend, tables, N, M, fingerprint):
        self.backend, self.tables = backend, tables
        self.N, self.M, self.fingerprint = N, M, fingerprint
        self.downsampling = 2 ** (M + 2)

    def code(self, x):
        """Padded float NCHW image -> (rANS payload, latent (h, w), Timing): the core the benchmarks time."""
        start = time.perf_counter()
        y = self.backend.analysis(x)[0]
        mid = time.perf_counter()
        payload = encode_latent(y, self.tables)
        return payload, y.shape[1:], Timing(mid - start, time.perf_counter() - mid)

    def reconstruct(self, payload, latent_hw):
        """rANS payload -> (float NCHW image of latent size x d, Timing)."""
        start = time.perf_counter()
        y_hat = decode_latent(payload, self.tables, latent_hw)
        mid = time.perf_counter()
        return self.backend.synthesis(y_hat[None]), Timing(time.perf_counter() - mid, mid - start)

    def encode(self, rgb, size=None):
        """uint8 HxWx3 -> (.roi bytes, Timing); `size`=(h, w) resizes first, as the paper's protocol does."""
        if size is not None:
            rgb = resize(rgb, size)
        height, width = rgb.shape[:2]
        payload, (latent_h, latent_w), timing = self.code(pad_to_multiple(to_nchw(rgb), self.downsampling))
        header = bitstream.StreamHeader(
            self.N, self.M, bytes.fromhex(self.fingerprint)[:8], height, width, latent_h, latent_w
        )
        return bitstream.pack(header, payload), timing

    def decode(self, data):
        """.roi stream or reference msgpack packet -> (uint8 HxWx3, Timing)."""
        if bitstream.is_roi_stream(data):
            header, payload = bitstream.unpack(data)
            bitstream.check_model(header, self.N, self.M, self.fingerprint)
            latent_hw, crop = (header.latent_height, header.latent_width), (header.height, header.width)
        else:
            payload, latent_hw = bitstream.unpack_reference_packet(data, self.downsampling)
            crop = None
        x_hat, timing = self.reconstruct(payload, latent_hw)
        if crop is not None:
            x_hat = x_hat[..., : crop[0], : crop[1]]
        return to_rgb8(x_hat), timing


def export_in_cache(key, load):
    """`<cache>/exports/<key>`, exported on first use from load() -> (model, CheckpointInfo)."""
    out = os.path.join(cache_dir(), "exports", key)
    if not os.path.isfile(os.path.join(out, MANIFEST)):
        try:
            from .export import export_model
        except ImportError:
            raise BackendError(
                "{} has no export yet and exporting needs torch: run `roi-trt export` where torch is installed "
                "and pass the export directory as MODEL".format(key)
            ) from None
        model, info = load()
        export_model(model, info, out)
    return out


def cached_export(checkpoint):
    """Export directory of `checkpoint` in the cache (keyed by name and file hash), made on first use."""

    def load():
        from .checkpoint import load_checkpoint  # torch: only reached when an export must be made

        return load_checkpoint(checkpoint)

    stem = os.path.splitext(os.path.basename(checkpoint))[0]
    return export_in_cache("{}-{}".format(stem, file_sha256(checkpoint)[:12]), load)


def open_codec(model=None, backend="auto", threads=None, device=None):
    """MODEL (None | export dir | checkpoint) + backend name -> Codec."""
    if model is None:
        from .demo import DEMO_CHECKPOINT

        model = DEMO_CHECKPOINT
    if not os.path.exists(model):
        raise BackendError("{}: no such model (give an export directory or a checkpoint)".format(model))
    is_export = os.path.isdir(model)
    if backend == "auto":
        backend = "onnxruntime"
    if backend == "torch":
        if is_export:
            raise BackendError("the torch backend needs a checkpoint, not an export directory")
        from .checkpoint import load_checkpoint
        from .export import entropy_tables, fingerprint

        net, info = load_checkpoint(model)
        impl = backend_class("torch")(net, device=device or "cpu", threads=threads)
        return Codec(impl, entropy_tables(net._bottleneck), info.N, info.M, fingerprint(net))
    export_dir = model if is_export else cached_export(model)
    manifest = read_manifest(export_dir)
    tables = EntropyTables.load(os.path.join(export_dir, ENTROPY_TABLES))
    if tables.channels != manifest["N"]:
        raise ModelMismatchError("{}: entropy tables do not match the manifest".format(export_dir))
    impl = backend_class(backend)(export_dir, manifest, threads=threads)
    return Codec(impl, tables, manifest["N"], manifest["M"], manifest["fingerprint"])
