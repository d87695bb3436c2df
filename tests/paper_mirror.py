"""A stand-in for the authors' download server: http.server on 127.0.0.1 in a thread, serving files and their
sha256sums.txt, with HTTP Range and faults on demand (torch-free, Python 3.6)."""

import hashlib
import http.server
import re
import socketserver
import threading


def sha256sums(files):
    """`sha256sum` output for {name: bytes}."""
    return "".join("{}  {}\n".format(hashlib.sha256(data).hexdigest(), name) for name, data in sorted(files.items()))


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        mirror = self.server.mirror
        name, requested = self.path.lstrip("/"), self.headers.get("Range")
        mirror.requests.append((name, requested))
        data = mirror.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        m = re.match(r"bytes=(\d+)-$", requested or "")
        if m and not mirror.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */{}".format(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes {}-{}/{}".format(start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name.endswith(".pt") and mirror.hold is not None:
            mirror.hold.wait()
        if name.endswith(".pt") and mirror.cut_after is not None:
            body = body[:mirror.cut_after]
            self.close_connection = True
            if mirror.gone_after_cut:
                self.wfile.write(body)
                self.wfile.flush()
                mirror.close()  # nothing listens on the port any more
                return
        self.wfile.write(body)


class Mirror(object):
    """Serves `files` ({name: bytes}) and, unless given in `files`, their sha256sums.txt.

    Faults: `cut_after` sends only that many bytes of a .pt body, then closes the connection (after
    announcing the whole length); with `gone_after_cut` the server also stops listening. `ignore_range`
    answers every request with the whole file; `hold` (an Event) delays .pt bodies until it is set.
    `requests` records (name, Range header) per request.
    """

    def __init__(self, files, port=0):
        self.files = dict(files)
        self.files.setdefault("sha256sums.txt", sha256sums(files).encode())
        self.requests = []
        self.cut_after, self.gone_after_cut, self.ignore_range, self.hold = None, False, False, None
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.mirror = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:{}".format(self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._closed = threading.Lock()

    def downloads(self, name):
        """The Range headers (None for whole-file requests) of the requests for `name`, in order."""
        return [requested for requested_name, requested in self.requests if requested_name == name]

    def close(self):
        """Stop serving and listening (callable from a request handler: those run in threads of their own)."""
        if self._closed.acquire(False):
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
