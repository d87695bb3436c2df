"""The Python-backend models of a roi-trt Triton repository (each repository model.py imports one of
these as `TritonPythonModel`).

`DecodeModel` (`roi_decode`): one `.roi` stream per request in (`STREAM`, bytes), the decoded image out
(`IMAGE`, uint8 [1, H, W, 3]) and its size (`SIZE`, int32 [1, 2]); optional request parameters `camera`
and `frame` name the frame for the server's sink. Each request is judged alone: a refused one gets an
INVALID_ARG error and the others in the same batch are decoded. Synthesis runs in this process
(`synthesis: inprocess`) or in the served model's own synthesis model, called through BLS with the
latents of one batch stacked by shape (`synthesis: bls`), so Triton batches it across cameras.

`SynthesisModel`: the synthesis transform as a Python-backend model (`<name>_synthesis`) for servers
without Triton's ONNX Runtime or TensorRT backends: requests of one shape run as one batch, as many as
fit the memory budget of one untiled image; a latent larger than that runs alone, in tiles.

triton_python_backend_utils exists only inside Triton's Python backend, so it is imported there.
"""

import json
import os

import numpy as np

from ..codec import Codec
from ..errors import RoiTrtError
from .service import (
    DEFAULT_LIMITS, DecodeService, DirectorySink, Limits, RequestError, ServedModel, SinkUnavailable, callback_sink,
    read_served_models, request_parameters, stream_sha256,
)

# Tensor names of the decode model and of every synthesis model (the exported decoder's own names).
STREAM, IMAGE, SIZE = "STREAM", "IMAGE", "SIZE"
LATENT, SYNTHESIZED = "latent_hat", "image"


def _parameters(args):
    """The model config's `parameters` as {key: string}."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def _device(args, backend):
    """Where this instance runs its transforms: Triton's instance kind and device id -> a backend device."""
    if args.get("model_instance_kind") != "GPU":
        return "cpu"
    index = int(args.get("model_instance_device_id", 0))
    return "cuda:{}".format(index) if backend == "tensorrt" else "cuda"


def _open_codec(export_dir, params, args):
    from ..codec import open_codec

    backend = params.get("backend", "onnxruntime")
    threads = int(params["threads"]) if params.get("threads") else None
    max_memory = int(params["max_memory"]) if params.get("max_memory") else None
    return open_codec(export_dir, backend=backend, parts=("decoder",), threads=threads,
                      device=_device(args, backend), max_memory=max_memory)


def _same_shape_groups(items, shape_of, limit):
    """Indexes of `items` grouped by shape, each group at most `limit` long, in first-seen order."""
    groups = {}
    for index, item in enumerate(items):
        groups.setdefault(shape_of(item), []).append(index)
    out = []
    for indexes in groups.values():
        out += [indexes[k:k + limit] for k in range(0, len(indexes), limit)]
    return out


def _frame_chunks(indexes, frames_of, limit):
    """Consecutive runs of `indexes` holding at most `limit` frames together (a request with more runs alone)."""
    chunk, total = [], 0
    for index in indexes:
        if chunk and total + frames_of(index) > limit:
            yield chunk
            chunk, total = [], 0
        chunk.append(index)
        total += frames_of(index)
    if chunk:
        yield chunk


class DecodeModel(object):
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        params = _parameters(args)
        here = os.path.join(args["model_repository"], args["model_version"])
        self.bls = params.get("synthesis") == "bls"
        self.max_batch = max(1, int(params.get("synthesis_max_batch", "1")))
        served = []
        try:
            for entry in read_served_models(here):
                export = os.path.join(here, entry["export"])
                codec = None if self.bls else _open_codec(export, params, args)
                served.append(ServedModel(entry["name"], export, entry.get("synthesis"), codec))
            limits = Limits(int(params.get("max_stream_bytes", DEFAULT_LIMITS.max_stream_bytes)),
                            int(params.get("max_pixels", DEFAULT_LIMITS.max_pixels)))
            sink = None
            if params.get("sink_dir"):
                sink = DirectorySink(params["sink_dir"])
            elif params.get("sink_callback"):
                sink = callback_sink(params["sink_callback"])
        except RoiTrtError as exc:  # Triton shows the model as failed to load, with this message
            for model in served:
                if model.codec is not None:
                    model.codec.close()
            raise RuntimeError(str(exc)) from None
        self.service = DecodeService(served, limits, sink)

    def finalize(self):
        self.service.close()

    def _error(self, message, code="INVALID_ARG"):
        """An error response; INVALID_ARG (HTTP 400) tells the client not to send it again, UNAVAILABLE (503)
        to send it again later."""
        error = self.pb.TritonError
        value = getattr(error, code, None)
        return self.pb.InferenceResponse(error=error(message) if value is None else error(message, value))

    def _request(self, request):
        """-> (served, latent, crop, camera, frame, outputs wanted, stream SHA-256) or RequestError."""
        tensor = self.pb.get_input_tensor_by_name(request, STREAM)
        streams = tensor.as_numpy().reshape(-1)
        if streams.size != 1:
            raise RequestError("send one stream per request, got {}".format(streams.size))
        data = streams[0]
        if not isinstance(data, bytes):
            raise RequestError("STREAM must be bytes")
        try:  # request parameters reach the Python backend from Triton 23.xx on
            parameters = json.loads(getattr(request, "parameters", lambda: "{}")() or "{}")
        except ValueError:
            raise RequestError("request parameters are not JSON") from None
        camera, frame = request_parameters(parameters)
        served, latent, crop = self.service.parse(data)
        wanted = set(request.requested_output_names() or (IMAGE, SIZE))
        return served, latent, crop, camera, frame, wanted, stream_sha256(data)

    def _synthesize_bls(self, parsed, indexes):
        """One BLS request with the stacked latents of `indexes` (one model, one shape) -> images."""
        served = parsed[indexes[0]][0]
        batch = np.concatenate([parsed[i][1] for i in indexes])
        options = {}
        if hasattr(self.pb, "PreferredMemory"):  # outputs of a GPU model come back in host memory
            options["preferred_memory"] = self.pb.PreferredMemory(self.pb.TRITONSERVER_MEMORY_CPU, 0)
        response = self.pb.InferenceRequest(
            model_name=served.synthesis_model, requested_output_names=[SYNTHESIZED],
            inputs=[self.pb.Tensor(LATENT, batch)], **options).exec()
        if response.has_error():
            raise RequestError("synthesis failed: {}".format(response.error().message()))
        images = self.pb.get_output_tensor_by_name(response, SYNTHESIZED).as_numpy()
        return [images[k:k + 1] for k in range(len(indexes))]

    def _synthesize(self, parsed):
        """Decoded uint8 HxWx3 images (or RequestErrors) for the parsed requests, in order. In process each
        tile is converted as it is done; a synthesis model answers with float images, converted here."""
        out = [None] * len(parsed)
        if not self.bls:
            for k, (served, latent, crop) in enumerate(p[:3] for p in parsed):
                try:
                    out[k] = served.codec.synthesize_rgb8(latent, crop)[0]
                except RoiTrtError as exc:
                    out[k] = RequestError(str(exc))
            return out
        for indexes in _same_shape_groups(parsed, lambda p: (p[0].name,) + p[1].shape, self.max_batch):
            try:
                images = self._synthesize_bls(parsed, indexes)
            except RequestError as exc:
                images = [exc] * len(indexes)
            for i, image in zip(indexes, images):
                out[i] = image if isinstance(image, RequestError) else Codec.finish_decode(image, parsed[i][2])
        return out

    def execute(self, requests):
        responses = [None] * len(requests)
        parsed, where = [], []
        for index, request in enumerate(requests):
            try:
                parsed.append(self._request(request))
                where.append(index)
            except RequestError as exc:
                responses[index] = self._error(str(exc))
        for index, p, rgb in zip(where, parsed, self._synthesize(parsed)):
            if isinstance(rgb, RequestError):
                responses[index] = self._error(str(rgb))
                continue
            served, _, _, camera, frame, wanted, digest = p
            try:
                rgb = self.service.finish(served, rgb, camera, frame, digest)
            except RequestError as exc:
                responses[index] = self._error(str(exc))
                continue
            except SinkUnavailable as exc:
                responses[index] = self._error(str(exc), "UNAVAILABLE")
                continue
            outputs = []
            if IMAGE in wanted:
                outputs.append(self.pb.Tensor(IMAGE, rgb[None]))
            if SIZE in wanted:
                outputs.append(self.pb.Tensor(SIZE, np.array([rgb.shape[:2]], np.int32)))
            responses[index] = self.pb.InferenceResponse(outputs)
        return responses


class SynthesisModel(object):
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        params = _parameters(args)
        export = os.path.join(args["model_repository"], args["model_version"], "export")
        try:
            self.codec = _open_codec(export, params, args)
        except RoiTrtError as exc:
            raise RuntimeError(str(exc)) from None

    def finalize(self):
        self.codec.close()

    def execute(self, requests):
        latents = [self.pb.get_input_tensor_by_name(r, LATENT).as_numpy() for r in requests]
        responses = [None] * len(requests)
        rows, cols = self.codec.tile_latents("decoder")
        largest = self.codec.backend.largest_input("decoder")  # an engine's profile bounds the batch too
        for indexes in _same_shape_groups(latents, lambda x: x.shape[1:], len(latents)):
            height, width = latents[indexes[0]].shape[2:]
            frames = max(1, rows * cols // (height * width))  # the working memory of one untiled image
            if largest is not None:
                frames = min(frames, largest[0])
            for chunk in _frame_chunks(indexes, lambda i: latents[i].shape[0], frames):
                alone = frames == 1 or sum(latents[i].shape[0] for i in chunk) > frames
                self._run(requests, latents, chunk, responses, tiled=alone)
        return responses

    def _each_in_tiles(self, latent):
        """The images of a request's latents, each synthesized alone in tiles (a single one is not copied)."""
        images = [self.codec.synthesize(latent[k:k + 1])[0] for k in range(latent.shape[0])]
        return images[0] if len(images) == 1 else np.concatenate(images)

    def _run(self, requests, latents, indexes, responses, tiled):
        """Synthesize the requests `indexes` together (or each latent alone, in tiles, when one is large)."""
        try:
            if tiled:
                images = [self._each_in_tiles(latents[i]) for i in indexes]
            else:
                batch = self.codec.backend.synthesis(np.concatenate([latents[i] for i in indexes]))
                bounds = np.cumsum([0] + [latents[i].shape[0] for i in indexes])
                images = [batch[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        except RoiTrtError as exc:
            error = self.pb.TritonError(str(exc))
            for i in indexes:
                responses[i] = self.pb.InferenceResponse(error=error)
            return
        for i, image in zip(indexes, images):
            responses[i] = self.pb.InferenceResponse([self.pb.Tensor(SYNTHESIZED, image)])
