"""Clients of the decode service: Triton's HTTP/REST protocol with its binary-data extension through the
standard library alone (what a Jetson Nano's Python 3.6 has: PyPI has no grpcio >= 1.41 wheel for
Python 3.6 on aarch64, which every tritonclient release with gRPC needs), and gRPC through tritonclient.

    with connect("http://server:8000") as client:
        reply = client.decode(stream, camera="cam0", frame=17, image=True)   # Reply(size, image)

URLs: http:// and https:// (HTTP; https through a TLS proxy in front of Triton), grpc:// and grpcs://
(gRPC, grpcs with TLS: `tls_ca` to check the server, `tls_cert`/`tls_key` for mutual TLS).
Errors: `Refused` when the server refused this request (a malformed or foreign stream: do not send it
again), `Unavailable` when it could not be reached, failed itself or answered something else than
roi_decode's reply (send it again later).
"""

import json
import struct
from collections import namedtuple

from ..errors import RoiTrtError
from ..optional import require

MODEL = "roi_decode"
Reply = namedtuple("Reply", "size image")  # (height, width), uint8 HxWx3 or None


class Refused(RoiTrtError):
    """The server refused this request; the reason is the server's."""


class Unavailable(RoiTrtError):
    """The server could not be reached or is not serving: worth a retry."""


def _parameters(camera, frame):
    out = {}
    if camera is not None:
        out["camera"] = camera
    if frame is not None:
        out["frame"] = int(frame)
    return out


class HttpClient(object):
    """Triton's HTTP/REST inference protocol with binary tensors, one kept-alive connection."""

    def __init__(self, url, model=MODEL, timeout=30.0, tls_ca=None, tls_cert=None, tls_key=None, headers=None):
        import http.client
        import ssl
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.model, self.timeout, self.headers = model, timeout, dict(headers or {})
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=tls_ca)
            if tls_cert:
                context.load_cert_chain(tls_cert, tls_key)
            self._connect = lambda: http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout,
                                                                context=context)
        else:
            self._connect = lambda: http.client.HTTPConnection(parts.hostname, parts.port or 8000, timeout=timeout)
        self._connection = None

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _post(self, path, body, headers):
        import http.client

        for attempt in (0, 1):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request("POST", path, body, dict(self.headers, **headers))
                response = self._connection.getresponse()
                return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt or not isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                   ConnectionResetError)):
                    raise Unavailable("server unreachable: {}".format(exc)) from None

    def decode(self, stream, camera=None, frame=None, image=False):
        """Send one .roi stream -> Reply; the decoded image comes back only when `image` is asked for."""
        data = struct.pack("<I", len(stream)) + bytes(stream)
        outputs = ["SIZE"] + (["IMAGE"] if image else [])
        header = json.dumps({
            "inputs": [{"name": "STREAM", "shape": [1, 1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(data)}}],
            "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
            "parameters": _parameters(camera, frame),
        }).encode("utf-8")
        status, headers, body = self._post("/v2/models/{}/infer".format(self.model), header + data, {
            "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
        if status != 200:
            raise self._error(status, body)
        return _http_reply(headers, body, image)

    @staticmethod
    def _error(status, body):
        try:
            message = json.loads(body.decode("utf-8"))["error"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            message = body[:200].decode("utf-8", "replace")
        if status >= 500:  # the server's own trouble (a model refuses a request with 400): worth a retry
            return Unavailable("server error (HTTP {}): {}".format(status, message))
        return Refused(message)


_DTYPES = {"INT32": "<i4", "UINT8": "u1"}


def _reply(size, image, want_image):
    """The SIZE and IMAGE outputs -> Reply; ValueError unless they are what roi_decode answers."""
    if size is None or size.shape != (1, 2):
        raise ValueError("no SIZE [1, 2] in it")
    hw = (int(size[0, 0]), int(size[0, 1]))
    if not want_image:
        return Reply(hw, None)
    if image is None or image.dtype != "uint8" or image.shape != (1,) + hw + (3,):
        raise ValueError("no uint8 IMAGE [1, {}, {}, 3] in it".format(*hw))
    return Reply(hw, image[0])


def _malformed(exc):
    """A reply that is not what roi_decode answers (a proxy's page, another service on the port): worth a
    retry, as the frame may not have been decoded; the sink takes a frame it already holds as delivered."""
    return Unavailable("malformed reply from the server ({}: {})".format(type(exc).__name__, exc))


def _http_reply(headers, body, want_image):
    import numpy as np

    try:
        length = int(headers.get("inference-header-content-length", len(body)))
        if not 0 < length <= len(body):
            raise ValueError("a JSON header of {} bytes in a body of {}".format(length, len(body)))
        meta = json.loads(body[:length].decode("utf-8"))
        offset, out = length, {}
        for output in meta["outputs"]:
            size = int(output["parameters"]["binary_data_size"])
            if not 0 <= size <= len(body) - offset:
                raise ValueError("output {!r} of {} bytes runs past the body".format(output["name"], size))
            dtype = np.dtype(_DTYPES[output["datatype"]])
            out[output["name"]] = np.frombuffer(body[offset:offset + size], dtype).reshape(output["shape"])
            offset += size
        return _reply(out.get("SIZE"), out.get("IMAGE"), want_image)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # UnicodeDecodeError is a ValueError
        raise _malformed(exc) from None


class GrpcClient(object):
    """Triton's gRPC inference protocol through tritonclient (Python 3.7+ with grpcio)."""

    def __init__(self, url, model=MODEL, timeout=30.0, tls_ca=None, tls_cert=None, tls_key=None, headers=None):
        grpc = require("tritonclient.grpc", "the gRPC client")
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self._grpc, self.model, self.timeout, self.headers = grpc, model, timeout, headers
        self._client = grpc.InferenceServerClient(
            "{}:{}".format(parts.hostname, parts.port or 8001), ssl=parts.scheme == "grpcs",
            root_certificates=tls_ca, private_key=tls_key, certificate_chain=tls_cert)

    def close(self):
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def decode(self, stream, camera=None, frame=None, image=False):
        import numpy as np
        from tritonclient.utils import InferenceServerException

        grpc = self._grpc
        tensor = grpc.InferInput("STREAM", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[bytes(stream)]], dtype=object))
        outputs = [grpc.InferRequestedOutput(name) for name in ["SIZE"] + (["IMAGE"] if image else [])]
        try:
            result = self._client.infer(self.model, [tensor], outputs=outputs, parameters=_parameters(camera, frame),
                                        client_timeout=self.timeout, headers=self.headers)
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            if any(code in status for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL")):
                raise Unavailable("server unreachable: {}".format(exc.message())) from None
            raise Refused(exc.message()) from None
        try:
            return _reply(result.as_numpy("SIZE"), result.as_numpy("IMAGE"), image)
        except ValueError as exc:
            raise _malformed(exc) from None


def connect(url, **options):
    """The client for a server URL (http, https, grpc, grpcs)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        return HttpClient(url, **options)
    if scheme in ("grpc", "grpcs"):
        return GrpcClient(url, **options)
    raise RoiTrtError("server URL must start with http://, https://, grpc:// or grpcs://, got {!r}".format(url))
