"""The decode service on the real Triton Inference Server that nvidia-pytriton bundles.

A venv with nvidia-pytriton (no dependencies: only its tritonserver, Python backend and stubs are used),
the server side's packages and roi_trt from this tree is kept in .cache/triton-venv; each server is
`roi-trt serve run` in that venv on free loopback ports, and these tests talk to it over HTTP and gRPC
as cameras would. Configurations for the backends the bundled server lacks (ONNX Runtime, TensorRT) are
checked structurally against Triton's own ModelConfig schema.
"""

import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from roi_trt import bitstream
from roi_trt.codec import open_codec
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos
from roi_trt.serve.client import Refused, Unavailable, connect
from roi_trt.serve.repository import read_config, write_repository
from roi_trt.errors import RoiTrtError
from roi_trt.serve.server import ADMIN_HEADER, ServeProcess, ServerOptions, check_ports, free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".cache", "triton-venv")
# What the server side needs besides roi_trt; nvidia-pytriton itself pins numpy < 2.
SERVER_PACKAGES = ["nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime>=1.17", "Pillow>=8.4", "click>=8.0",
                   "msgpack>=1.0", "tqdm>=4.62"]
ADMIN_KEY = "test-admin-key"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert proc.returncode == 0, "{}\n{}".format(" ".join(cmd), proc.stdout[-4000:])
    return proc.stdout


@pytest.fixture(scope="session")
def triton_python():
    if not (3, 8) <= sys.version_info[:2] <= (3, 13):
        pytest.skip("nvidia-pytriton has Python backend stubs for Python 3.8-3.13 only")
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, "packages.stamp")
    wanted = "\n".join(SERVER_PACKAGES)
    if not (os.path.exists(stamp) and open(stamp).read() == wanted):
        shutil.rmtree(VENV, ignore_errors=True)
        _run([sys.executable, "-m", "venv", VENV])
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        try:
            _run(pip + ["--no-deps", SERVER_PACKAGES[0]])
        except AssertionError as exc:
            pytest.skip("cannot install nvidia-pytriton (needs PyPI): {}".format(str(exc).splitlines()[-1]))
        _run(pip + SERVER_PACKAGES[1:])
        with open(stamp, "w") as f:
            f.write(wanted)
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--disable-pip-version-check", ROOT])
    return python


def start_server(python, repository, log_dir, *extra):
    return ServeProcess(python, repository, log_dir, ADMIN_KEY, extra)


def photo_streams(model, size=None):
    """.roi streams of the bundled photos (and their local decodes) for `model`."""
    streams = []
    with open_codec(model) as codec:
        for path in sample_photos():
            rgb, _ = load_rgb(path)
            data, _ = codec.encode(rgb, size)
            streams.append((data, codec.decode(data)[0]))
    return streams


def foreign(data):
    """A well-formed stream (valid checksum) that names another model."""
    header, payload = bitstream.unpack(data)
    return bitstream.pack(header._replace(fingerprint=bytes(8)), payload)


@pytest.fixture(scope="module")
def repository(tmp_path_factory, export_dir):
    """Two models in one repository (the demo and the suite's export), with a sink and small limits."""
    root = tmp_path_factory.mktemp("serve")
    sink = root / "sink"
    from roi_trt.serve.service import Limits

    write_repository(["demo", export_dir], str(root / "repo"), max_batch=4, limits=Limits(200000, 700 * 700),
                     sink_dir=str(sink))
    return root / "repo", sink


@pytest.fixture(scope="module")
def server(triton_python, repository, tmp_path_factory):
    server = start_server(triton_python, repository[0], tmp_path_factory.mktemp("logs"))
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def streams(export_dir):
    return {"demo": photo_streams("demo"), "edge": photo_streams(export_dir)}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_round_trip_equals_local_decode_for_each_served_model(server, streams, protocol):
    with connect(server.url(protocol)) as client:
        for name, pairs in streams.items():
            for frame, (data, local) in enumerate(pairs):
                reply = client.decode(data, camera="rt-" + protocol + name, frame=frame, image=True)
                assert reply.size == local.shape[:2]
                assert reply.image.dtype == np.uint8 and reply.image.shape == local.shape
                assert np.abs(reply.image.astype(int) - local.astype(int)).max() <= 1
        assert client.decode(streams["demo"][0][0]).image is None  # the image travels only when asked for


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_refusals_are_per_request_and_the_server_keeps_serving(server, streams, protocol):
    data, local = streams["demo"][1]
    big = open_codec("demo", parts=("encoder",)).encode(np.tile(load_rgb(sample_photos()[0])[0], (2, 2, 1)))[0]
    assert len(big) < 200000  # refused for its pixels, not its bytes
    flipped = bytearray(data)
    flipped[-1] ^= 0x40
    cases = {
        "garbage": (b"\x00" * 100, "not a .roi stream"),
        "truncated": (data[:-5], "payload length"),
        "corrupt": (bytes(flipped), "checksum"),
        "foreign": (foreign(data), "is not served here"),
        "reference packet": (bitstream.pack_reference_packet(b"\x00" * 16, (4, 4)), "not a .roi stream"),
        "oversized": (data + b"\x00" * 200000, "larger than this server accepts (200000 bytes)"),
        "too many pixels": (big, "larger than this server accepts (490000 pixels)"),
        "empty": (b"", "not a .roi stream"),
    }
    with connect(server.url(protocol)) as client:
        for name, (bad, reason) in cases.items():
            with pytest.raises(Refused) as refused:
                client.decode(bad)
            assert reason in str(refused.value), name
            reply = client.decode(data, image=True)
            assert np.abs(reply.image.astype(int) - local.astype(int)).max() <= 1
        with pytest.raises(Refused, match="camera must be"):
            client.decode(data, camera="../etc")


def test_concurrent_cameras_mixed_with_bad_streams(server, streams):
    """Requests batched together by Triton are judged one by one."""
    pairs = streams["demo"] + streams["edge"]
    results, errors = {}, []

    def camera(k):
        try:
            with connect(server.url("http" if k % 2 else "grpc")) as client:
                for j in range(6):
                    data, local = pairs[(k + j) % len(pairs)]
                    if j % 3 == 2:
                        with pytest.raises(Refused):
                            client.decode(foreign(data) if k % 2 else data[:20])
                        continue
                    reply = client.decode(data, image=True)
                    results[(k, j)] = int(np.abs(reply.image.astype(int) - local.astype(int)).max())
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 6 * 4 and max(results.values()) <= 1


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sink_writes_each_frame_once_and_never_replaces(server, streams, repository, protocol):
    data, local = streams["demo"][2]
    camera = "sinkcam-" + protocol
    with connect(server.url(protocol)) as client:
        client.decode(data, camera=camera, frame=7)
        path = repository[1] / camera / "000000000007.png"
        written = np.asarray(Image.open(str(path)))
        assert np.abs(written.astype(int) - local.astype(int)).max() <= 1
        before = path.read_bytes()
        assert client.decode(data, camera=camera, frame=7, image=True).size == local.shape[:2]  # again: delivered
        with pytest.raises(Refused, match="already stored from another stream"):
            client.decode(streams["demo"][3][0], camera=camera, frame=7)
        assert path.read_bytes() == before and os.listdir(str(path.parent)) == [path.name]
        (repository[1] / "blocked").write_text("a file where a camera's directory would be")
        with pytest.raises(Unavailable, match="cannot write"):  # the server's trouble: the camera sends it again
            client.decode(data, camera="blocked", frame=1)


def test_admin_apis_need_the_key(server):
    import http.client

    def stats(headers):
        connection = http.client.HTTPConnection("127.0.0.1", server.http, timeout=10)
        connection.request("GET", "/v2/models/roi_decode/stats", headers=headers)
        return connection.getresponse().status

    assert stats({}) == 403
    assert stats({ADMIN_HEADER: "wrong"}) == 403
    assert stats({ADMIN_HEADER: ADMIN_KEY}) == 200
    assert ADMIN_KEY not in server.output() and "administrative APIs (header 'admin-key'): key from " in server.output()


def test_server_starts_from_a_source_tree(triton_python, tmp_path, streams):
    """Review finding: `roi-trt serve run` from the repository root failed: Triton's Python stub puts its
    working directory first on sys.path, and imported the tree's roi_trt (whose compiled coder a fresh
    clone lacks) instead of the installed one."""
    tree = tmp_path / "checkout"
    (tree / "roi_trt").mkdir(parents=True)
    (tree / "roi_trt" / "__init__.py").write_text(u'raise ImportError("the source tree, not the installed roi_trt")\n')
    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo))
    server = ServeProcess(triton_python, repo, tmp_path, ADMIN_KEY, cwd=str(tree))
    try:
        data, local = streams["demo"][1]
        with connect(server.url()) as client:
            assert client.decode(data).size == local.shape[:2]
    finally:
        status, output = server.stop()
    assert status == 0, output


def test_a_killed_serve_run_takes_triton_with_it_and_a_busy_port_is_named(triton_python, tmp_path):
    """New-user trial: `kill -9` of `serve run` left tritonserver holding the ports, and the next start ended in
    Triton's own log line. Now Triton dies with its parent, and a port in use is named in one line first."""
    import socket
    import time

    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo))
    server = ServeProcess(triton_python, repo, tmp_path, ADMIN_KEY)
    server.process.kill()
    server.process.wait(30)
    options = ServerOptions(http_port=server.http, grpc_port=server.grpc, metrics_port=free_ports(1)[0])
    deadline = time.monotonic() + 30
    while True:
        try:
            check_ports(options)
            break
        except RoiTrtError:
            assert time.monotonic() < deadline, "tritonserver outlived serve run"
            time.sleep(0.2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", server.http))
        busy.listen(1)
        grpc, metrics = free_ports(2)
        run = subprocess.run([os.path.join(os.path.dirname(triton_python), "roi-trt"), "serve", "run", str(repo),
                              "--http-port", str(server.http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert run.returncode == 1 and run.stdout.strip().splitlines()[-1].startswith(
        "Error: HTTP port {} on 127.0.0.1 is not free".format(server.http)), run.stdout


def test_stream_cli_sends_a_directory_being_written(server, tmp_path, repository):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "notes.txt").write_text("not a frame")
    for k, path in enumerate(sample_photos()[:2]):
        shutil.copy(path, str(incoming / "f{}.jpg".format(k)))
    (incoming / "broken.jpg").write_bytes(b"not a jpeg")
    proc = subprocess.run(
        [sys.executable, "-m", "roi_trt.cli", "stream", str(incoming), "--server", server.url(), "--camera", "dircam",
         "--idle-exit", "1.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # the broken file failed, the others went through
    assert ("captured 3, recovered 0: sent 2, sent from the spool 0, spooled 0, dropped 0, refused 0, undelivered 0, "
            "failed 1;") in proc.stdout, proc.stdout + proc.stderr
    assert "broken.jpg" in proc.stderr
    assert len(os.listdir(str(repository[1] / "dircam"))) == 2
    assert sorted(os.listdir(str(incoming))) == ["broken.jpg", "f0.jpg", "f1.jpg", "notes.txt"]  # sources untouched


def test_unreachable_server_is_retried_then_counted(tmp_path):
    from roi_trt.serve.camera import DirectorySource, stream

    (port,) = free_ports(1)
    shutil.copy(sample_photos()[2], str(tmp_path / "a.jpg"))
    lines = []
    with open_codec("demo", parts=("encoder",)) as codec, connect("http://127.0.0.1:{}".format(port)) as client:
        with pytest.raises(Unavailable):
            client.decode(b"x")
        stats = stream(DirectorySource(str(tmp_path), idle_exit=0.5), codec, client, retry_for=1.2, log=lines.append)
    assert (stats.captured, stats.sent, stats.undelivered) == (1, 0, 1)
    assert any("retrying {}".format(tmp_path / "a.jpg") in line for line in lines)
    assert any("undelivered" in line for line in lines)


def test_cameras_lose_and_duplicate_no_frame_when_the_server_and_cameras_are_killed(triton_python, tmp_path):
    """Two `roi-trt stream` processes (HTTP and gRPC) on directories being written, each with a spool: the server is
    killed (SIGKILL) and started again, one camera is killed while its spool holds frames, the other while it
    streams (roi_trt.serve.faults). Every frame ends in the sink once, equal to the local decode."""
    from roi_trt.serve.faults import fault_drill

    sink = tmp_path / "sink"
    repo = write_repository(["demo"], str(tmp_path / "repo"), sink_dir=str(sink), max_batch=4)
    server = start_server(triton_python, repo, tmp_path)
    try:
        result = fault_drill(server, str(sink), str(tmp_path), cameras=2, frames=24, outage=3.0)
    finally:
        server.stop()
    assert not result["problems"], result
    assert result["sink_files"] == result["frames"] >= 48 and result["max_abs_diff"] <= 1
    assert result["camera_kills"] == 2 and result["spool_sent"] > 0 and result["dropped"] == result["refused"] == 0


def test_python_synthesis_model_batches_across_requests(triton_python, tmp_path, streams):
    """`--synthesis python`: roi_decode entropy-decodes and calls <name>_synthesis through BLS."""
    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo), synthesis="python", max_batch=4)
    assert read_config(str(repo / "demo_synthesis" / "config.pbtxt")).backend == "python"
    server = start_server(triton_python, repo, tmp_path)
    try:
        outcomes = []

        def send(pair):
            with connect(server.url("grpc")) as client:
                reply = client.decode(pair[0], image=True)
                outcomes.append(int(np.abs(reply.image.astype(int) - pair[1].astype(int)).max()))

        threads = [threading.Thread(target=send, args=(p,)) for p in streams["demo"] * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outcomes) == 12 and max(outcomes) <= 1
        with open_codec("demo") as codec:  # larger than one untiled image's budget: synthesized alone, in tiles
            big, _ = codec.encode(np.tile(load_rgb(sample_photos()[0])[0], (2, 2, 1)))
            local = codec.decode(big)[0]
        with connect(server.url()) as client:
            assert np.abs(client.decode(big, image=True).image.astype(int) - local.astype(int)).max() <= 1
            with pytest.raises(Refused, match="is not served here"):
                client.decode(streams["edge"][0][0])
    finally:
        status, output = server.stop()
    assert status == 0 and "stopping (signal 15)" in output


def _certificates(directory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl to make test certificates")
    d = str(directory)

    def run(*args):
        _run([openssl] + list(args), cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=roi-trt test CA")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-copy_extensions", "copy")
    return {name: os.path.join(d, name) for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_mutual_tls_grpc(triton_python, tmp_path, streams):
    certs = _certificates(tmp_path)
    repo = tmp_path / "repo"
    write_repository(["demo"], str(repo))
    server = start_server(triton_python, repo, tmp_path, "--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
                    "--tls-ca", certs["ca.pem"])
    data, local = streams["demo"][0]
    url = "grpcs://127.0.0.1:{}".format(server.grpc)
    try:
        with connect(url, tls_ca=certs["ca.pem"], tls_cert=certs["client.pem"], tls_key=certs["client.key"]) as client:
            reply = client.decode(data, image=True)
            assert np.abs(reply.image.astype(int) - local.astype(int)).max() <= 1
        with connect(url, tls_ca=certs["ca.pem"], timeout=10) as client:  # no client certificate
            with pytest.raises(Unavailable):
                client.decode(data)
        with connect(server.url("grpc"), timeout=10) as client:  # plain text to a TLS port
            with pytest.raises(Unavailable):
                client.decode(data)
        with connect(server.url("http")) as client:  # plain HTTP stays on loopback, behind the admin key
            with pytest.raises(Refused):
                client.decode(data)
    finally:
        server.stop()
