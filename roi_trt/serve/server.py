"""`roi-trt serve run`: NVIDIA's Triton Inference Server for a repository on this machine.

The server binary comes from nvidia-pytriton (its wheel bundles `tritonserver`, the Python backend and a
backend stub per Python release; no ONNX Runtime or TensorRT backends) or from a Triton install given
with `--tritonserver` (e.g. /opt/tritonserver/bin/tritonserver in NVIDIA's container). Triton's Python
backend runs models in a stub process whose Python must be the one that has roi_trt installed: this one.

Defaults that keep a server closed: every endpoint binds to 127.0.0.1 unless `--host` says otherwise,
models cannot be loaded or unloaded through the API (model control "none"), and the administrative
protocols (model repository and configuration, shared memory, statistics, trace, logging) answer only
requests that carry the admin key. With TLS (`--tls-cert/--tls-key`, `--tls-ca` for mutual TLS) gRPC
is encrypted and plain HTTP is bound to 127.0.0.1 with everything but health behind the admin key.

The admin key comes from a file only its owner can read (`--admin-key-file`, made with a random key if
absent) or from $ROI_TRT_ADMIN_KEY (a process's environment is readable by its owner and root only), and
is never printed; without either, a random key nobody is told keeps those APIs closed. Triton itself
takes the key on its command line, which every local user can read in /proc/PID/cmdline: run the server
where no untrusted user logs in (its own host or container), or mount /proc with `hidepid=invisible`.

Triton runs in a private working directory: the Python backend's stub puts its working directory first
on sys.path, so started from a source tree it would import that tree's roi_trt (whose compiled coder may
be missing or built for another Python) instead of the installed one.
"""

import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import namedtuple

from ..errors import RoiTrtError, UsageError
from ..optional import MissingDependency

ADMIN_HEADER = "admin-key"
ADMIN_PROTOCOLS = ("model-repository", "model-config", "shared-memory", "statistics", "trace", "logging")
_ALL_HTTP_APIS = ("metadata", "inference") + ADMIN_PROTOCOLS
STUB = "triton_python_backend_stub"
ADMIN_KEY_ENV = "ROI_TRT_ADMIN_KEY"
_ADMIN_KEY = re.compile(r"[A-Za-z0-9._~+/=-]+")  # what an HTTP header and Triton's flag carry unquoted

TritonInstall = namedtuple("TritonInstall", "binary libraries backends stub")


class ServerOptions(namedtuple("ServerOptions", "host http_port grpc_port metrics_port admin_key tls_cert tls_key "
                                                "tls_ca exit_timeout tensorrt_plugin")):
    """Where and how the server listens; None for the TLS files means plain gRPC. `tensorrt_plugin`: the GDN1
    plugin library Triton's TensorRT backend loads for `--gdn plugin` engines (it registers itself on load)."""

    def __new__(cls, host="127.0.0.1", http_port=8000, grpc_port=8001, metrics_port=8002, admin_key=None,
                tls_cert=None, tls_key=None, tls_ca=None, exit_timeout=30, tensorrt_plugin=None):
        return super(ServerOptions, cls).__new__(cls, host, http_port, grpc_port, metrics_port,
                                                 admin_key or secrets.token_urlsafe(24), tls_cert, tls_key, tls_ca,
                                                 exit_timeout, tensorrt_plugin)

    @property
    def tls(self):
        return bool(self.tls_cert)


def _checked_key(key, where):
    if not _ADMIN_KEY.fullmatch(key):
        raise RoiTrtError("{}: the admin key must be one word of letters, digits and ._~+/=-".format(where))
    return key


def _read_private(path):
    """The text of `path`, refused unless it is a regular file of this user that no one else may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise RoiTrtError("{}: {}".format(path, exc.strerror)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RoiTrtError("{}: not a regular file".format(path))
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise RoiTrtError("{}: the admin key file must be yours and private (mode {:04o}, owner {}): "
                              "chmod 600 {}".format(path, stat.S_IMODE(info.st_mode), info.st_uid, path))
        return os.read(fd, 1 << 16).decode("ascii", "replace").strip()  # a key is a line
    finally:
        os.close(fd)


def admin_key(path=None, environ=None):
    """-> (key or None, where it came from): `path`, made with a random key (mode 0600) if it does not exist,
    or $ROI_TRT_ADMIN_KEY; None when neither is given (ServerOptions then makes a random key nobody is told)."""
    environ = os.environ if environ is None else environ
    if path and environ.get(ADMIN_KEY_ENV):
        raise UsageError("give --admin-key-file or ${}, not both".format(ADMIN_KEY_ENV))
    if environ.get(ADMIN_KEY_ENV):
        return _checked_key(environ[ADMIN_KEY_ENV].strip(), "$" + ADMIN_KEY_ENV), "from $" + ADMIN_KEY_ENV
    if not path:
        return None, "none given: a random key nobody is told keeps them closed (--admin-key-file)"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _checked_key(_read_private(path), path), "from " + path
    except OSError as exc:
        raise RoiTrtError("{}: {}".format(path, exc.strerror)) from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return _read_private(path), "made in " + path + " (mode 0600)"


def find_tritonserver(binary=None):
    """The Triton install to run: `binary` (a tritonserver executable), else nvidia-pytriton's in this Python."""
    version = "{}.{}".format(*sys.version_info[:2])
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise RoiTrtError("{}: not an executable tritonserver".format(binary))
        binary = os.path.abspath(binary)  # it runs in a directory of its own (TritonServer.start)
        return TritonInstall(binary, [], os.path.join(os.path.dirname(os.path.dirname(binary)), "backends"), None)
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("roi-trt serve run needs a tritonserver: pip install nvidia-pytriton (it bundles one) "
                                "or give --tritonserver PATH")
    package = list(spec.submodule_search_locations)[0]
    root = os.path.join(package, "tritonserver")
    stub = os.path.join(root, "python_backend_stubs", version, STUB)
    if not os.path.isfile(stub):
        raise RoiTrtError("nvidia-pytriton has no Python backend stub for Python {} (it has {})".format(
            version, ", ".join(sorted(os.listdir(os.path.join(root, "python_backend_stubs"))))))
    libraries = [os.path.join(os.path.dirname(package), "nvidia_pytriton.libs")]
    return TritonInstall(os.path.join(root, "bin", "tritonserver"), libraries, os.path.join(root, "backends"), stub)


def backend_directory(install, workdir):
    """The backends Triton loads: the install's own, with this Python's stub beside the Python backend."""
    if install.stub is None:
        return install.backends
    target = os.path.join(workdir, "backends")
    shutil.copytree(install.backends, target)
    shutil.copy2(install.stub, os.path.join(target, "python", STUB))
    return target


def server_environment(install):
    """PATH leads to this Python (the stub's interpreter takes its prefix from it), LD_LIBRARY_PATH to the
    bundled libraries and this Python's libpython."""
    env = dict(os.environ)
    paths = list(install.libraries) + [sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        paths.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    if env.get("PYTHONPATH"):  # the server runs elsewhere (TritonServer.start): keep what these entries meant
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def server_command(install, repository, backends, options, log_file=None):
    """The tritonserver command line for `repository` with `options`."""
    http_host = "127.0.0.1" if options.tls else options.host
    restricted = ",".join(ADMIN_PROTOCOLS)
    if options.tls:
        restricted_http = ",".join(_ALL_HTTP_APIS)
    else:
        restricted_http = restricted
    argv = [
        install.binary, "--model-repository", os.path.abspath(repository), "--backend-directory", backends,
        "--model-control-mode", "none", "--strict-readiness", "true", "--exit-on-error", "true",
        "--exit-timeout-secs", str(options.exit_timeout), "--disable-auto-complete-config",
        "--http-address", http_host, "--http-port", str(options.http_port),
        "--grpc-address", options.host, "--grpc-port", str(options.grpc_port),
        "--metrics-address", options.host, "--metrics-port", str(options.metrics_port),
        "--allow-gpu-metrics", "false",
        "--grpc-restricted-protocol", "{}:{}={}".format(restricted, ADMIN_HEADER, options.admin_key),
        "--http-restricted-api", "{}:{}={}".format(restricted_http, ADMIN_HEADER, options.admin_key),
    ]
    if options.tls:
        argv += ["--grpc-use-ssl", "true", "--grpc-server-cert", os.path.abspath(options.tls_cert),
                 "--grpc-server-key", os.path.abspath(options.tls_key)]
        if options.tls_ca:
            argv += ["--grpc-use-ssl-mutual", "true", "--grpc-root-cert", os.path.abspath(options.tls_ca)]
    if options.tensorrt_plugin:
        argv += ["--backend-config", "tensorrt,plugins={}".format(os.path.abspath(options.tensorrt_plugin))]
    if log_file:
        argv += ["--log-file", os.path.abspath(log_file)]
    return argv


def check_ports(options):
    """RoiTrtError naming the first of the server's ports another process listens on (a server left running,
    say): Triton itself would only log it and exit."""
    import socket

    http_host = "127.0.0.1" if options.tls else options.host
    for host, port, what in ((http_host, options.http_port, "HTTP"), (options.host, options.grpc_port, "gRPC"),
                             (options.host, options.metrics_port, "metrics")):
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: closed ports count as free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RoiTrtError("{} port {} on {} is not free ({}): another server listens there (stop it, or give "
                              "--{}-port)".format(what, port, host, exc.strerror or exc, what.lower())) from None
        finally:
            probe.close()


def _die_with_parent():
    """In the child before exec: Linux kills it when `serve run` dies, however it dies (SIGKILL included), so no
    tritonserver is left holding the ports."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class TritonServer(object):
    """One tritonserver process: started, waited on until it is ready, stopped cleanly (SIGINT, then its
    exit timeout, then SIGKILL to its whole process group, Python backend stubs included)."""

    def __init__(self, repository, options=None, binary=None, log_file=None):
        self.repository, self.options = repository, options or ServerOptions()
        self.install = find_tritonserver(binary)
        self.log_file = log_file
        self.process = None
        self._workdir = None

    def start(self):
        if not os.path.isdir(self.repository):
            raise RoiTrtError("{}: no such model repository".format(self.repository))
        check_ports(self.options)
        self._workdir = tempfile.mkdtemp(prefix="roi-trt-triton-")
        backends = backend_directory(self.install, self._workdir)
        argv = server_command(self.install, self.repository, backends, self.options, self.log_file)
        self.process = subprocess.Popen(argv, env=server_environment(self.install), cwd=self._workdir,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        return self

    def wait_ready(self, timeout=120):
        """Block until every model is loaded (health/ready) or raise RoiTrtError (exited, or timed out)."""
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RoiTrtError("tritonserver exited with status {} before it was ready{}".format(
                    self.process.returncode, " (see {})".format(self.log_file) if self.log_file else ""))
            try:
                connection = http.client.HTTPConnection("127.0.0.1" if self.options.tls or self.options.host in
                                                        ("0.0.0.0", "::") else self.options.host,
                                                        self.options.http_port, timeout=2)
                connection.request("GET", "/v2/health/ready")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RoiTrtError("tritonserver was not ready within {} s".format(timeout))

    def stop(self):
        """SIGINT (Triton finishes in-flight requests within its exit timeout), then SIGKILL; -> exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(self.options.exit_timeout + 10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # stubs left behind by a server that did not stop
        except OSError:
            pass
        self.process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self):
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_forever(server, echo=print):
    """Run `server` until SIGINT or SIGTERM, then stop it cleanly; -> its exit status."""
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        server.wait_ready()
        o = server.options
        echo("Triton is ready: HTTP {}:{}, gRPC {}:{}{}, metrics {}:{}; model roi_decode".format(
            "127.0.0.1" if o.tls else o.host, o.http_port, o.host, o.grpc_port, " (TLS)" if o.tls else "",
            o.host, o.metrics_port))
        while not stopping and server.process.poll() is None:
            time.sleep(0.2)
        if stopping:
            echo("stopping (signal {}): finishing requests in flight".format(stopping[0]))
    finally:
        status = server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if stopping and status in (0, -signal.SIGINT) else (status or 0)


def free_ports(count):
    """Ports free on 127.0.0.1 now (for harnesses that start servers of their own)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _children(pid):
    """Ids of the processes whose parent is `pid` (Linux /proc)."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/{}/stat".format(entry)) as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except (OSError, IndexError):
            continue  # not a process, or gone
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


class ServeProcess(object):
    """`roi-trt serve run REPOSITORY` as a user runs it, the `roi-trt` that pip installed beside `python` (one
    with nvidia-pytriton and roi_trt installed), from `cwd` (default `log_dir`), on free loopback ports,
    with `admin_key` in a private file in `log_dir`; for tests and benchmarks; stopped with SIGTERM, as a
    service manager would."""

    def __init__(self, python, repository, log_dir, admin_key, extra=(), timeout=180, cwd=None):
        self.http, self.grpc, metrics = free_ports(3)
        self.admin_key = admin_key
        self.log = os.path.join(str(log_dir), "triton-{}.log".format(self.http))
        self.out = os.path.join(str(log_dir), "serve-run-{}.out".format(self.http))
        fd, key_file = tempfile.mkstemp(prefix="admin-", suffix=".key", dir=str(log_dir))  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(admin_key)
        script = os.path.join(os.path.dirname(os.path.abspath(shutil.which(python) or python)), "roi-trt")
        argv = [script, "serve", "run", str(repository), "--http-port", str(self.http), "--grpc-port", str(self.grpc),
                "--metrics-port", str(metrics), "--admin-key-file", key_file, "--log-file", self.log] + list(extra)
        self._env = dict(os.environ)
        self._env.pop(ADMIN_KEY_ENV, None)
        self._argv, self._cwd, self._timeout = argv, str(cwd or log_dir), timeout
        self.start()

    def start(self):
        """Run `serve run` (again, after kill(): on the same ports, as cameras know them) until Triton is ready."""
        offset = os.path.getsize(self.out) if os.path.exists(self.out) else 0
        with open(self.out, "a") as out:
            self.process = subprocess.Popen(self._argv, stdout=out, stderr=subprocess.STDOUT, cwd=self._cwd,
                                            env=self._env)
        deadline = time.monotonic() + self._timeout
        while "Triton is ready" not in self.output()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RoiTrtError("the server did not start:\n{}\n{}".format(self.output(), self.triton_log()))
            time.sleep(0.2)

    def output(self):
        with open(self.out) as f:
            return f.read()

    def triton_log(self):
        if not os.path.exists(self.log):
            return ""
        with open(self.log) as f:
            return f.read()[-4000:]

    def url(self, protocol="http"):
        return "{}://127.0.0.1:{}".format(protocol, self.http if protocol == "http" else self.grpc)

    def statistics(self, model="roi_decode"):
        """Triton's statistics of `model` (an administrative API: sent with the admin key)."""
        import http.client
        import json

        connection = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        connection.request("GET", "/v2/models/{}/stats".format(model), headers={ADMIN_HEADER: self.admin_key})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RoiTrtError("statistics refused (HTTP {}): {}".format(response.status, body[:200]))
        return json.loads(body.decode("utf-8"))["model_stats"][0]

    def kill(self):
        """SIGKILL to tritonserver and its Python backend stubs (its process group), as a crash would end them
        with requests in flight; `serve run` then exits by itself. -> its exit status."""
        for pid in _children(self.process.pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass  # gone meanwhile
        return self.process.wait(60)

    def stop(self):
        """SIGTERM -> (exit status, output)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(60)
        return status, self.output()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
