"""TensorRT backend: the model's engines (built on this GPU by roi_trt.build), one execution context per
part, one CUDA stream, pinned host buffers and asynchronous copies.

Engines load through `loader.load_engine`, so each is checked against its sidecar (hash, model, TensorRT
release, GPU, plugin library) before TensorRT deserializes it. Inputs outside an engine's optimization
profile are refused before anything runs. Every run synchronizes its stream before it returns or raises,
so buffers are never reused or freed (Backend.close waits for runs in flight) under a copy or an inference. tensorrt and the CUDA library (pycuda, cuda-bindings or
libcudart, see roi_trt.cuda) are imported when the backend opens.
"""

import re
import threading

import numpy as np

from ... import cuda
from ...artifacts import model_facts
from ...errors import BackendError
from ...spec import PARTS
from ..base import Backend
from . import api
from .loader import deserialize, load_engine


def engine_label(sidecars):
    """How benchmark rows name the TensorRT backend of engines with these sidecars: "tensorrt", with
    "-plugin" for the GDN1 plugin and "-polyphase" for a decoder in phases, so that engines built both
    ways and timed in one run (jetson/bench.sh) keep apart."""
    label = "tensorrt"
    if any(s.get("gdn") == "plugin" for s in sidecars):
        label += "-plugin"
    if any(s.get("part") == "decoder" and s.get("deconv") == "polyphase" for s in sidecars):
        label += "-polyphase"
    return label


def _infer(runtime, stream, context, io, array, buffer):
    """One inference of `array` on the stream; `buffer(slot, nbytes)` gives its buffers (0, 1: device in and
    out; 2, 3: pinned host in and out). The stream is synchronized whatever fails, so nothing queued still
    writes into buffers that are then reused or freed."""
    out_shape = api.set_input_shape(context, io, array.shape)
    n_in, n_out = array.nbytes, int(np.prod(out_shape)) * 4
    device_in, device_out = buffer(0, n_in), buffer(1, n_out)
    host_in, host_out = buffer(2, n_in), buffer(3, n_out)
    host_in.array[:n_in] = array.reshape(-1).view(np.uint8)
    try:
        runtime.to_device(device_in, host_in, n_in, stream)
        api.execute(context, io, device_in.ptr, device_out.ptr, stream.handle)
        runtime.to_host(host_out, device_out, n_out, stream)
    finally:
        runtime.synchronize(stream)
    return host_out.array[:n_out].view(np.float32).reshape(out_shape).copy()


def run_engine(trt, version, serialized, array, device=0):
    """Deserialize an engine built here and run it once on `array` (float32, within its profile): what checks
    a layer alone, e.g. the GDN1 plugin in the self-test. Its buffers and stream are freed before it returns."""
    runtime = cuda.open_runtime(device)
    buffers = []

    def buffer(slot, nbytes):
        buffers.append(runtime.device_buffer(nbytes) if slot < 2 else runtime.host_buffer(nbytes))
        return buffers[-1]

    try:
        with runtime.active():
            trt_runtime, engine = deserialize(trt, serialized)  # kept alive while its engine runs
            if engine is None:
                raise BackendError("TensorRT could not deserialize the engine (its log above says why)")
            context = engine.create_execution_context()
            stream = runtime.stream()
            try:
                return _infer(runtime, stream, context, api.engine_io(engine, trt, version),
                              np.ascontiguousarray(array, np.float32), buffer)
            finally:
                for allocated in buffers:
                    runtime.free(allocated)
                runtime.destroy_stream(stream)
    finally:
        runtime.close()


class _Part(object):
    """One part's engine (loader.LoadedEngine), execution context, I/O names, profile (min, opt,
    max NCHW, from the sidecar) and buffers [device in, device out, pinned in, pinned out]."""

    def __init__(self, loaded, context, io, profile):
        self.loaded, self.context, self.io, self.profile = loaded, context, io, profile
        self.buffers = [None] * 4


def _device_index(device):
    if device in (None, "auto", "cuda"):
        return 0
    match = re.match(r"^cuda:(\d+)$", str(device))
    if not match:
        raise BackendError("tensorrt runs on cuda or cuda:N, not {!r}".format(device))
    return int(match.group(1))


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model, parts=PARTS, threads=None, device=None, frames=1, plugin_path=None):
        self._index = _device_index(device)
        self._plugin_path = plugin_path
        self._cuda = cuda.open_runtime(self._index)
        self._lock = threading.Lock()  # one stream and per-part buffers: one inference at a time
        with self._cuda.active():
            self._stream = self._cuda.stream()
        super(TensorRTBackend, self).__init__(model, parts, threads, device)

    @property
    def device(self):
        return "cuda:{}".format(self._index)

    @property
    def label(self):
        return engine_label([handle.loaded.sidecar for handle in self._parts.values()])

    def _load(self, part):
        with self._cuda.active():
            loaded = load_engine(self.model.engine_path(part), model_facts(self.model, part),
                                 self._plugin_path, self._index)
            io = api.engine_io(loaded.engine, loaded.trt, loaded.version)
            context = loaded.engine.create_execution_context()
        if context is None:
            raise BackendError("TensorRT could not create an execution context for the {} (out of GPU memory?)".format(
                part))
        shapes = loaded.sidecar["profile"]
        profile = tuple(tuple(shapes[k]) for k in ("min", "opt", "max"))
        return _Part(loaded, context, io, profile)

    def _handle(self, part):
        """The part's engine, context and buffers; BackendError once closed (a pipeline's late worker)."""
        handle = self._parts.get(part)
        if handle is None:
            raise BackendError("this {} backend is {}".format(
                self.name, "closed" if self.closed else "opened without the " + part))
        return handle

    def sidecar(self, part):
        """The checked sidecar of the part's engine (what it was built from, with and for)."""
        return self._handle(part).loaded.sidecar

    def largest_input(self, part):
        """The profile's largest input in latent units (the execution context reserved activations for it),
        cut where its device buffers, input and output, would take more than a quarter of the free memory."""
        batch, _, height, width = self.profile(part)[2]
        d = self.model.downsampling
        if part == "encoder":
            height, width = height // d, width // d
        with self._cuda.active():
            free, _ = self._cuda.memory()
        area = free // 4 // (4 * (3 * d * d + self.model.N))  # float32 image and latent per latent unit
        if height * width > area:
            side = max(1, int(area ** 0.5))
            height, width = min(height, side), min(width, side)
        return batch, height, width

    def profile(self, part):
        """(min, opt, max) NCHW input shapes the part's engine accepts: larger images need tiles within max."""
        return self._handle(part).profile

    def fixed_shape(self, part):
        """The engine's single input shape where its profile allows only one, else the model's."""
        handle = self._parts.get(part)
        if handle is not None and handle.profile[0] == handle.profile[2]:
            batch, _, height, width = handle.profile[0]
            return batch, height, width
        return super(TensorRTBackend, self).fixed_shape(part)

    def _check_profile(self, part, shape):
        low, _, high = self.profile(part)
        if any(s < lo or s > hi for s, lo, hi in zip(shape, low, high)):
            raise BackendError("{} input {} is outside the engine's profile ({} to {}): rebuild the engine with "
                               "shapes that cover it, or process the image in smaller tiles".format(
                                   part, api.shape_text(shape), api.shape_text(low), api.shape_text(high)))

    def _buffer(self, handle, slot, nbytes):
        """The slot's buffer, reallocated when too small (0, 1: device; 2, 3: pinned host)."""
        current = handle.buffers[slot]
        if current is not None:
            if current.nbytes >= nbytes:
                return current
            handle.buffers[slot] = None
            self._cuda.free(current)
        nbytes = max(nbytes, 1 << 20)
        handle.buffers[slot] = self._cuda.device_buffer(nbytes) if slot < 2 else self._cuda.host_buffer(nbytes)
        return handle.buffers[slot]

    def _run(self, part, array):
        self._check_profile(part, array.shape)
        handle = self._parts[part]
        with self._lock, self._cuda.active():
            return _infer(self._cuda, self._stream, handle.context, handle.io, array,
                          lambda slot, nbytes: self._buffer(handle, slot, nbytes))

    def time_engine(self, part, array, repeats, warmup=3):
        """Seconds of each of `repeats` runs of the engine alone on `array` (copied to the device once), by
        CUDA events on its stream: what TensorRT itself takes, without copies or host work."""
        self._check_profile(part, array.shape)
        array = np.ascontiguousarray(array, np.float32)
        with self.in_flight(part), self._lock, self._cuda.active():
            handle = self._parts[part]
            out_shape = api.set_input_shape(handle.context, handle.io, array.shape)
            device_in = self._buffer(handle, 0, array.nbytes)
            device_out = self._buffer(handle, 1, int(np.prod(out_shape)) * 4)
            host_in = self._buffer(handle, 2, array.nbytes)
            host_in.array[:array.nbytes] = array.reshape(-1).view(np.uint8)
            start, end = self._cuda.event(), self._cuda.event()
            seconds = []
            try:
                self._cuda.to_device(device_in, host_in, array.nbytes, self._stream)
                for k in range(warmup + repeats):
                    self._cuda.record(start, self._stream)
                    api.execute(handle.context, handle.io, device_in.ptr, device_out.ptr, self._stream.handle)
                    self._cuda.record(end, self._stream)
                    ms = self._cuda.elapsed_ms(start, end)
                    if k >= warmup:
                        seconds.append(ms / 1e3)
            finally:
                self._cuda.synchronize(self._stream)
                for event in (start, end):
                    self._cuda.destroy_event(event)
            return seconds

    def _release(self, handle):
        for buffer in handle.buffers:
            if buffer is not None:
                self._cuda.free(buffer)
        handle.buffers = [None] * 4
        handle.context = None  # the context before its engine
        handle.loaded = None

    def _close_runtime(self):
        """After the runs in flight returned (Backend.close): parts, then the stream, on this device."""
        with self._cuda.active():  # TensorRT frees device memory: on this device, in the pycuda context
            super(TensorRTBackend, self)._close_runtime()
            self._cuda.destroy_stream(self._stream)
        self._cuda.close()
