"""The decode service's rules and the camera's pipeline without Triton (torch-free, Python 3.6)."""

import os
import shutil
import threading
import time

import numpy as np
import pytest

from roi_trt import bitstream
from roi_trt.codec import open_codec
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos
from roi_trt.serve.camera import DirectorySource, stream
from roi_trt.serve.client import Refused, Reply
from roi_trt.serve.service import DecodeService, DirectorySink, Limits, RequestError, ServedModel, request_parameters


@pytest.fixture(scope="module")
def service(export_dir):
    models = [ServedModel(name, path, codec=open_codec(path, parts=("decoder",))) for name, path in
              (("demo", "demo"), ("edge", export_dir))]
    svc = DecodeService(models, Limits(300000, 600 * 600))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def demo_stream():
    rgb, _ = load_rgb(sample_photos()[2])
    with open_codec("demo") as codec:
        data, _ = codec.encode(rgb)
        return data, codec.decode(data)[0]


def test_each_stream_is_decoded_by_the_model_it_names(service, export_dir, demo_stream):
    rgb, _ = load_rgb(sample_photos()[1])
    with open_codec(export_dir) as codec:
        edge, _ = codec.encode(rgb)
        expected = codec.decode(edge)[0]
    assert np.array_equal(service.decode(edge), expected)
    assert np.array_equal(service.decode(demo_stream[0]), demo_stream[1])


def test_refused_before_decoding(service, demo_stream):
    data = demo_stream[0]
    header, payload = bitstream.unpack(data)
    with pytest.raises(RequestError, match="is not served here"):
        service.parse(bitstream.pack(header._replace(fingerprint=b"\x01" * 8), payload))
    with pytest.raises(RequestError, match="larger than this server accepts"):
        service.parse(data + b"\x00" * 300000)
    with pytest.raises(RequestError, match="not a .roi stream"):
        service.parse(bitstream.pack_reference_packet(payload, (header.latent_height, header.latent_width)))
    big = bitstream.header_for(128, 2, "00" * 32, 1000, 1000)
    with pytest.raises(RequestError, match="larger than this server accepts"):
        service.parse(bitstream.pack(big._replace(fingerprint=header.fingerprint), payload))
    with pytest.raises(RequestError, match="more than a"):  # longer than its own latent can hold
        small = header._replace(height=16, width=16, latent_height=1, latent_width=1)
        service.parse(bitstream.pack(small, payload))


def test_the_same_model_twice_is_refused():
    with pytest.raises(Exception, match="are the same model"):
        DecodeService([ServedModel("a", "demo"), ServedModel("b", "demo")])


@pytest.mark.parametrize("parameters, error", [
    ({"camera": "../x"}, "camera"), ({"camera": ".hidden"}, "camera"), ({"camera": "a/b"}, "camera"),
    ({"camera": "x" * 65}, "camera"), ({"frame": -1}, "frame"), ({"frame": "3"}, "frame"), ({"frame": True}, "frame"),
])
def test_request_parameters_are_checked(parameters, error):
    with pytest.raises(RequestError, match=error):
        request_parameters(parameters)
    assert request_parameters({"camera": "cam-0.left", "frame": 3}) == ("cam-0.left", 3)


def test_directory_sink_never_replaces(tmp_path, demo_stream):
    from roi_trt.serve.service import FrameInfo

    sink = DirectorySink(str(tmp_path))
    sink(demo_stream[1], FrameInfo("demo", "cam", 5))
    path = tmp_path / "cam" / "000000000005.png"
    before = path.read_bytes()
    with pytest.raises(RequestError, match="exists"):
        sink(demo_stream[1][::-1].copy(), FrameInfo("demo", "cam", 5))
    assert path.read_bytes() == before
    assert os.listdir(str(tmp_path / "cam")) == ["000000000005.png"]  # no temporary file left


class LocalClient(object):
    """The server's decoding in this process, `delay` seconds per request: a slow server, for the camera."""

    def __init__(self, service, delay=0.0):
        self.service, self.delay, self.frames = service, delay, []

    def decode(self, data, camera=None, frame=None, image=False):
        time.sleep(self.delay)
        try:
            rgb = self.service.decode(data, camera, frame)
        except RequestError as exc:
            raise Refused(str(exc))
        self.frames.append(frame)
        return Reply(rgb.shape[:2], rgb if image else None)


def _frames(directory, count):
    for k in range(count):
        shutil.copy(sample_photos()[k % 4], os.path.join(str(directory), "f{:02d}.jpg".format(k)))


def test_backpressure_sends_every_frame_in_order(service, tmp_path):
    _frames(tmp_path, 6)
    client = LocalClient(service, delay=0.05)
    with open_codec("demo", parts=("encoder",)) as codec:
        stats = stream(DirectorySource(str(tmp_path), poll=0.05, idle_exit=0.3), codec, client, size=(64, 64),
                       drop="none", queue_size=1, log=lambda line: None)
    assert (stats.captured, stats.sent, stats.dropped) == (6, 6, 0)
    assert client.frames == list(range(6))


def test_drop_oldest_counts_every_dropped_frame(service, tmp_path):
    _frames(tmp_path, 10)
    client, lines = LocalClient(service, delay=0.3), []
    with open_codec("demo", parts=("encoder",)) as codec:
        stats = stream(DirectorySource(str(tmp_path), poll=0.05, idle_exit=0.3), codec, client, size=(64, 64),
                       drop="oldest", queue_size=1, log=lines.append)
    assert stats.captured == 10 and stats.dropped > 0
    assert stats.sent + stats.dropped == 10 and stats.sent == len(client.frames)
    assert client.frames == sorted(client.frames) and client.frames[-1] == 9  # the newest frame is never dropped
    assert any("dropped frame" in line for line in lines)


def test_refused_frames_are_counted_and_the_stream_goes_on(tmp_path, export_dir):
    _frames(tmp_path, 3)
    only_edge = DecodeService([ServedModel("edge", export_dir, codec=open_codec(export_dir, parts=("decoder",)))])
    lines = []
    with open_codec("demo", parts=("encoder",)) as codec:
        stats = stream(DirectorySource(str(tmp_path), poll=0.05, idle_exit=0.3), codec, LocalClient(only_edge),
                       size=(64, 64), log=lines.append)
    only_edge.close()
    assert (stats.captured, stats.sent, stats.refused) == (3, 0, 3)
    assert sum("is not served here" in line for line in lines) == 3


def test_directory_source_takes_files_written_later(tmp_path):
    source = DirectorySource(str(tmp_path), poll=0.05, idle_exit=1.0)
    stop = threading.Event()

    def writer():
        time.sleep(0.2)
        partial = tmp_path / "late.jpg"
        data = open(sample_photos()[0], "rb").read()
        with open(str(partial), "wb") as f:  # written in two halves: taken only once whole
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(0.3)
            f.write(data[len(data) // 2:])

    thread = threading.Thread(target=writer)
    thread.start()
    frames = list(source.frames(stop))
    thread.join()
    assert [os.path.basename(f.name) for f in frames] == ["late.jpg"]
    assert frames[0].rgb.shape == load_rgb(sample_photos()[0])[0].shape


def test_server_command_keeps_the_server_closed_by_default():
    from roi_trt.serve.server import ADMIN_PROTOCOLS, ServerOptions, TritonInstall, server_command

    install = TritonInstall("/opt/tritonserver/bin/tritonserver", [], "/opt/tritonserver/backends", None)

    def flags(options):
        argv = server_command(install, "repo", install.backends, options)[1:]
        return dict((flag, value if not value.startswith("--") else None)
                    for flag, value in zip(argv, argv[1:] + ["--"]) if flag.startswith("--"))

    plain = flags(ServerOptions(admin_key="k"))
    assert plain["--http-address"] == plain["--grpc-address"] == plain["--metrics-address"] == "127.0.0.1"
    assert plain["--model-control-mode"] == "none" and "--grpc-use-ssl" not in plain
    assert plain["--grpc-restricted-protocol"] == plain["--http-restricted-api"] == ",".join(ADMIN_PROTOCOLS) + ":admin-key=k"
    tls = flags(ServerOptions(host="0.0.0.0", admin_key="k", tls_cert="c.pem", tls_key="c.key", tls_ca="ca.pem",
                              tensorrt_plugin="/x/libroi_trt_gdn1.so"))
    assert tls["--grpc-address"] == "0.0.0.0" and tls["--http-address"] == "127.0.0.1"
    assert tls["--grpc-use-ssl"] == tls["--grpc-use-ssl-mutual"] == "true" and tls["--grpc-root-cert"] == "ca.pem"
    assert tls["--http-restricted-api"].startswith("metadata,inference,")  # plain HTTP: only health is open
    assert tls["--backend-config"] == "tensorrt,plugins=/x/libroi_trt_gdn1.so"
    assert ServerOptions().admin_key != ServerOptions().admin_key  # a fresh random key when none is given


def test_video_file_frames_are_streamed_in_order(service, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from roi_trt.serve.camera import open_source

    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for k in range(5):
        frame = np.zeros((64, 96, 3), np.uint8)
        frame[:, :, 2] = 40 * k  # OpenCV's BGR: red rises frame by frame
        writer.write(frame)
    writer.release()
    replies = {}
    client = LocalClient(service)
    with open_codec("demo", parts=("encoder",)) as codec:
        stats = stream(open_source(path), codec, client, log=lambda line: None,
                       on_reply=lambda index, reply: replies.__setitem__(index, reply))
    assert (stats.captured, stats.sent) == (5, 5) and client.frames == list(range(5))
    reds = [float(replies[k].image[..., 0].mean()) for k in range(5)]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 100  # RGB order kept, frames in order
