"""One conformance suite for every backend: built the same way from a resolved model, parts loaded on
request, inputs checked with a clear error, closable, and agreeing with each other. A backend that
cannot run here (its runtime or device absent) skips with the reason."""

import numpy as np
import pytest

from roi_trt.backends import BACKENDS, open_backend
from roi_trt.errors import BackendError, RoiTrtError
from roi_trt.imageio import pad_to_multiple, to_nchw
from roi_trt.store import resolve


def opened(name, parts=("encoder", "decoder")):
    try:
        return open_backend(resolve("demo"), name, parts=parts)
    except RoiTrtError as exc:  # a runtime missing here: say which and why
        pytest.skip("{} backend unavailable here: {}".format(name, exc))


@pytest.fixture(scope="module")
def image(photo):
    return pad_to_multiple(to_nchw(photo[:96, :128]), 16)


@pytest.fixture(scope="module")
def reference(image):
    with open_backend(resolve("demo"), "onnxruntime") as backend:
        latent = backend.analysis(image)
        return latent, backend.synthesis(np.rint(latent))


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_agrees_with_onnxruntime(name, image, reference):
    with opened(name) as backend:
        latent = backend.analysis(image)
        assert latent.shape == (1, 128, 6, 8) and latent.dtype == np.float32
        assert np.abs(latent - reference[0]).max() < 1e-3
        decoded = backend.synthesis(np.rint(reference[0]))
        assert decoded.shape == image.shape and np.abs(decoded - reference[1]).max() < 1e-3


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("bad, message", [
    (lambda x: x.astype(np.float64), "float32"),
    (lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1)), "NCHW with 3 channels"),
    (lambda x: x[..., :90, :], "not a multiple of 16"),
    (lambda x: x[0], "NCHW with 3 channels"),
    (lambda x: x.tolist(), "numpy array"),
])
def test_bad_inputs_get_a_clear_error_and_the_backend_goes_on(name, image, bad, message):
    with opened(name) as backend:
        with pytest.raises(BackendError, match=message):
            backend.analysis(bad(image))
        assert backend.analysis(image).shape == (1, 128, 6, 8)  # still usable
        with pytest.raises(BackendError, match="NCHW with 128 channels"):
            backend.synthesis(np.zeros((1, 64, 6, 8), np.float32))


@pytest.mark.parametrize("name", BACKENDS)
def test_parts_are_loaded_on_request(name, image):
    with opened(name, parts=("encoder",)) as camera:
        assert camera.parts == ("encoder",) and camera.analysis(image).shape[1] == 128
        with pytest.raises(BackendError, match="opened without the decoder"):
            camera.synthesis(np.zeros((1, 128, 6, 8), np.float32))
    with opened(name, parts=("decoder",)) as server:
        with pytest.raises(BackendError, match="opened without the encoder"):
            server.analysis(image)
    with pytest.raises(BackendError, match="parts must be among"):
        open_backend(resolve("demo"), name, parts=("transmogrifier",))


@pytest.mark.parametrize("name", BACKENDS)
def test_close_releases_the_parts(name, image):
    backend = opened(name)
    with backend:
        backend.analysis(image)
    assert backend.closed
    with pytest.raises(BackendError, match="closed"):
        backend.analysis(image)


@pytest.mark.parametrize("name", BACKENDS)
def test_close_during_a_run_waits_for_it_and_refuses_new_runs(name, photo):
    """A pipeline that gave up on a worker closes the backend under it: the run in flight finishes on what
    it was given (nothing is freed under it) before close returns, and later runs are refused."""
    import threading
    import time

    backend = opened(name)
    large = pad_to_multiple(to_nchw(photo), 16)  # about a second of analysis on a CPU
    done = {}
    worker = threading.Thread(target=lambda: done.setdefault("latent", backend.analysis(large)))
    worker.start()
    deadline = time.monotonic() + 30
    while backend._running == 0 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    backend.close()
    assert done["latent"].shape == (1, 128, 64, 64)  # finished before close returned
    worker.join()
    with pytest.raises(BackendError, match="closed"):
        backend.analysis(large)
    backend.close()  # twice is fine


def test_any_runtime_failure_is_that_inputs_error(image):
    """What a runtime raises of its own types (TensorRT's RuntimeError, cuda-python's TypeError, out of memory)
    becomes a BackendError of that input, so a batch reports the file and goes on; the backend stays usable."""
    pytest.importorskip("torch")
    with opened("torch") as backend:
        def fault(module, inputs, output):
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")

        hook = backend._parts["encoder"].register_forward_hook(fault)
        with pytest.raises(BackendError, match="^torch failed on the encoder: CUDA error: an illegal memory access "
                                               "was encountered$"):
            backend.analysis(image)
        hook.remove()
        assert backend.analysis(image).shape == (1, 128, 6, 8) and backend._running == 0


@pytest.mark.parametrize("name", BACKENDS)
def test_frames_side_by_side_agree_with_one_at_a_time(name, image, reference):
    """A batch opens the backend for several frames at once and calls it from that many threads."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        backend = open_backend(resolve("demo"), name, frames=4)
    except RoiTrtError as exc:
        pytest.skip("{} backend unavailable here: {}".format(name, exc))
    with backend:
        assert 1 <= backend.frames <= 4
        images = [image, image[..., ::-1].copy(), image, image[..., ::-1].copy()]
        with ThreadPoolExecutor(backend.frames) as pool:
            latents = list(pool.map(backend.analysis, images))
        for x, latent in zip(images, latents):
            assert np.abs(latent - backend.analysis(x)).max() < 1e-5
        assert np.abs(latents[0] - reference[0]).max() < 1e-3


@pytest.mark.parametrize("frames, threads, side_by_side", [
    ("cores", None, True), ("many", None, True), ("many", 1, True), ("many", 2, False), (1, None, False),
    ("fewer", None, False), ("fewer", 1, True),
])
def test_onnxruntime_runs_a_frame_per_core_side_by_side(frames, threads, side_by_side):
    """Given a frame per core (or --threads 1), single-threaded frames side by side; else one at a time."""
    from roi_trt.backends.onnxruntime import usable_cores

    cores = usable_cores()
    if cores < (3 if frames == "fewer" else 2):
        pytest.skip("{} cores: no frames side by side to test here".format(cores))
    frames = {"cores": cores, "many": 4 * cores, "fewer": cores - 1}.get(frames, frames)
    with open_backend(resolve("demo"), "onnxruntime", parts=("decoder",), device="cpu", frames=frames,
                      threads=threads) as backend:
        if side_by_side:
            assert backend.frames == min(frames, cores) and backend.options.intra_op_num_threads == 1
        else:  # 0: ONNX Runtime's default, every core
            assert backend.frames == 1 and backend.options.intra_op_num_threads == (threads or 0)
