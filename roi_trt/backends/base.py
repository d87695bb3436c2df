"""The backend contract: the two transforms of one resolved model, numpy in and out (host memory).

Every backend is built the same way, `Backend(model, parts, threads, device, frames)` from a
`store.ResolvedModel`, loads only the parts it is asked for (a camera needs the encoder, a server the
decoder), checks its inputs before running them (so one bad image fails alone and a batch goes on), and
is closed with `close()` or a `with` block. `frames` is how many frames the caller could transform at
once (a batch pipeline); a backend that runs several side by side faster than one after another says how
many in `frames` (ONNX Runtime on CPU), the others keep 1.

One lifecycle for all: `close()` may be called while runs are in flight in other threads (a pipeline that
gave up waiting for its workers): it refuses new runs at once and releases the runtime only after the
runs in flight have returned, so nothing is freed under them. Whatever a run raises (a runtime's own
exception types, out of memory) becomes a BackendError of that input, which a batch reports for that file
and goes on.
"""

import contextlib
import threading

import numpy as np

from ..errors import BackendError, RoiTrtError
from ..spec import PARTS


class Backend(object):
    """Runs the analysis and synthesis transforms of one model.

    Arrays are float32 NCHW in host memory, so timings of `analysis`/`synthesis` include any
    host<->device copies, as the paper's protocol requires. Subclasses implement `_load(part)` and
    `_run(part, array)`, and may narrow `shapes(part)`.
    """

    name = "base"
    frames = 1  # transforms to run side by side, each from its own thread

    def __init__(self, model, parts=PARTS, threads=None, device=None, frames=1):
        self._lifecycle, self._running = threading.Condition(), 0
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise BackendError("parts must be among {}, got {}".format(", ".join(PARTS), ", ".join(parts) or "none"))
        self.model, self.parts = model, tuple(parts)
        self._parts, self.closed = {}, False
        try:
            for part in self.parts:
                self._parts[part] = self._load(part)
        except BaseException:
            self.close()
            raise

    @property
    def device(self):
        """Human-readable execution device (for reports)."""
        raise NotImplementedError

    @property
    def label(self):
        """The backend as benchmark rows name it: differently built engines of one backend get their own."""
        return self.name

    def _load(self, part):
        raise NotImplementedError

    def _run(self, part, array):
        raise NotImplementedError

    def _release(self, handle):
        """Free what `_load` made; the default drops the reference."""

    def _close_runtime(self):
        """Release every part (`_release`); backends that hold more (a stream, a device) add to it."""
        for handle in self._parts.values():
            self._release(handle)
        self._parts = {}

    def close(self):
        """Refuse new runs, wait for those in flight, then release the runtime (safe from any thread, twice)."""
        with self._lifecycle:
            if self.closed:
                return
            self.closed = True
            while self._running:
                self._lifecycle.wait()
        self._close_runtime()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def analysis(self, x):
        """image [B, 3, H, W] in [0, 1] (H, W multiples of the downsampling) -> latent [B, N, H/d, W/d]."""
        return self._checked("encoder", x, 3)

    def synthesis(self, y_hat):
        """dequantized latent [B, N, h, w] -> image [B, 3, h*d, w*d] in [0, 1]."""
        return self._checked("decoder", y_hat, self.model.N)

    def largest_input(self, part):
        """(batch, height, width) in latent units of the largest `part` input this backend takes at once
        without more memory than it holds, or None where the host's working-memory budget decides (CPU
        runtimes): a TensorRT engine's context reserved activations for its profile's largest input."""
        return None

    def memory_budget(self):
        """Bytes of working memory for a transform where the caller gave none, or None for the host's
        default (codec.default_max_memory): runtimes on a GPU use the device's own memory."""
        return None

    def fixed_shape(self, part):
        """(batch, height, width) of the part's input where the model fixes it, else None."""
        shape = self.model.fixed_shape
        if shape is None or part == "encoder":
            return shape
        d = self.model.downsampling
        return shape[0], shape[1] // d, shape[2] // d

    def _checked(self, part, array, channels):
        if part not in self.parts:
            raise BackendError("this {} backend was opened without the {} (parts: {})".format(
                self.name, part, ", ".join(self.parts)))
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            raise BackendError("{} input must be a float32 numpy array, got {}".format(
                part, getattr(array, "dtype", type(array).__name__)))
        if array.ndim != 4 or array.shape[1] != channels:
            raise BackendError("{} input must be NCHW with {} channels, got shape {}".format(
                part, channels, "x".join(str(s) for s in array.shape)))
        batch, _, height, width = array.shape
        if part == "encoder":
            d = self.model.downsampling
            if height % d or width % d or not height or not width:
                raise BackendError("encoder input {}x{} is not a multiple of {} (pad it first)".format(width, height, d))
        fixed = self.fixed_shape(part)
        if fixed is not None and (batch, height, width) != tuple(fixed):
            raise BackendError(
                "this model is fixed to {} input {}x{}x{} (batch x height x width), got {}x{}x{}: "
                "resize with --size or export without --fixed-shape".format(part, *(tuple(fixed) + (batch, height, width))))
        return self._guarded(part, np.ascontiguousarray(array))

    @contextlib.contextmanager
    def in_flight(self, part):
        """A block that uses the runtime: counted as in flight (`close` waits for it), refused once closed,
        and whatever the runtime raises of its own types (RuntimeError, TypeError, MemoryError, ...) becomes a
        BackendError of this input."""
        with self._lifecycle:
            if self.closed:
                raise BackendError("this {} backend is closed".format(self.name))
            self._running += 1
        try:
            yield
        except RoiTrtError:
            raise
        except Exception as exc:
            message = str(exc).strip().splitlines()
            raise BackendError("{} failed on the {}: {}".format(
                self.name, part, message[0] if message else type(exc).__name__)) from exc
        finally:
            with self._lifecycle:
                self._running -= 1
                self._lifecycle.notify_all()

    def _guarded(self, part, array):
        with self.in_flight(part):
            return self._run(part, array)
