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
from roi_trt.serve.client import Refused, Reply, Unavailable
from roi_trt.serve.service import DecodeService, DirectorySink, Limits, RequestError, ServedModel, request_parameters
from roi_trt.serve.spool import FrameIds, Spool, spool_entries


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


def test_default_budget_refuses_a_small_stream_of_a_large_image_from_its_header(monkeypatch):
    """A 33 MP image in a 0.15 MB stream was decoded by default (64 MP); the default budget (a 4K frame)
    refuses it before the stream is checked, copied or entropy-decoded, and admits a 4K frame."""
    import tracemalloc

    from roi_trt.serve.service import DEFAULT_LIMITS

    served, decoded = ServedModel("demo", "demo"), []
    decode = served.streams.decode_unpacked
    monkeypatch.setattr(served.streams, "decode_unpacked", lambda *args: decoded.append(args) or decode(*args))
    service = DecodeService([served])
    assert DEFAULT_LIMITS.max_pixels == 3840 * 2160 and DEFAULT_LIMITS.max_stream_bytes == 3840 * 2160 // 2
    hostile = served.streams.median_stream(4320, 7680)
    assert len(hostile) < 200000
    tracemalloc.start()
    try:
        with pytest.raises(RequestError, match=r"7680x4320 is larger than this server accepts \(8294400 pixels\)"):
            service.parse(hostile)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded == [] and peak < 16 << 10  # not even the payload was copied
    _, latent, crop = service.parse(served.streams.median_stream(2160, 3840))
    assert crop == (2160, 3840) and latent.shape == (1, 128, 135, 240) and len(decoded) == 1


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


def test_directory_sink_stores_each_frame_once_and_refuses_a_different_one(tmp_path, demo_stream):
    """A frame sent again (its reply was lost) is delivered without a second file; another stream under the
    same (camera, frame) is a conflict, and the file is never replaced."""
    from PIL import Image

    from roi_trt.serve.service import SINK_DIGEST_KEY, FrameInfo, png_text, stream_sha256

    data, rgb = demo_stream
    sink = DirectorySink(str(tmp_path))
    sink(rgb, FrameInfo("demo", "cam", 5, stream_sha256(data)))
    path = tmp_path / "cam" / "000000000005.png"
    before = path.read_bytes()
    assert np.array_equal(np.asarray(Image.open(str(path))), rgb)
    assert png_text(str(path), SINK_DIGEST_KEY) == stream_sha256(data)
    sink(rgb, FrameInfo("demo", "cam", 5, stream_sha256(data)))  # the same stream again: delivered
    with pytest.raises(RequestError, match="already stored from another stream"):
        sink(rgb[::-1].copy(), FrameInfo("demo", "cam", 5, stream_sha256(data[:-1])))
    with pytest.raises(RequestError, match="already stored from another stream"):  # no digest proves nothing
        sink(rgb, FrameInfo("demo", "cam", 5, None))
    assert path.read_bytes() == before
    assert os.listdir(str(tmp_path / "cam")) == ["000000000005.png"]  # no temporary file left


def test_a_sink_that_cannot_write_asks_for_the_frame_again(tmp_path, demo_stream):
    from roi_trt.serve.service import FrameInfo, SinkUnavailable

    (tmp_path / "blocked").write_text("a file where the camera's directory would be")
    with pytest.raises(SinkUnavailable, match="cannot write"):
        DirectorySink(str(tmp_path))(demo_stream[1], FrameInfo("demo", "blocked", 1, "00"))


def test_the_service_hands_the_sink_each_streams_digest(export_dir, tmp_path, demo_stream):
    data, rgb = demo_stream
    service = DecodeService([ServedModel("demo", "demo", codec=open_codec("demo", parts=("decoder",)))],
                            sink=DirectorySink(str(tmp_path)))
    try:
        assert np.array_equal(service.decode(data, "cam", 9), rgb)
        assert np.array_equal(service.decode(data, "cam", 9), rgb)  # sent twice: delivered, stored once
        other, _ = open_codec("demo", parts=("encoder",)).encode(rgb[::-1].copy())
        with pytest.raises(RequestError, match="already stored"):
            service.decode(other, "cam", 9)
    finally:
        service.close()
    assert os.listdir(str(tmp_path / "cam")) == ["000000000009.png"]


class LocalClient(object):
    """The server's decoding in this process, `delay` seconds per request: a slow server, for the camera."""

    def __init__(self, service, delay=0.0):
        self.service, self.delay, self.frames, self.images = service, delay, [], []

    def decode(self, data, camera=None, frame=None, image=False):
        time.sleep(self.delay)
        try:
            rgb = self.service.decode(data, camera, frame)
        except RequestError as exc:
            raise Refused(str(exc))
        self.frames.append(frame)
        self.images.append(rgb)
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
    assert len(client.frames) == 6 and client.frames == sorted(client.frames)


def test_drop_oldest_counts_every_dropped_frame(service, tmp_path):
    _frames(tmp_path, 10)
    client, lines = LocalClient(service, delay=0.3), []
    with open_codec("demo", parts=("encoder",)) as codec:
        stats = stream(DirectorySource(str(tmp_path), poll=0.05, idle_exit=0.3), codec, client, size=(64, 64),
                       drop="oldest", queue_size=1, log=lines.append)
    assert stats.captured == 10 and stats.dropped > 0
    assert stats.sent + stats.dropped == 10 and stats.sent == len(client.frames)
    assert client.frames == sorted(client.frames)
    with open_codec("demo") as codec:  # the newest frame is never dropped
        newest = codec.decode(codec.encode(load_rgb(str(tmp_path / "f09.jpg"))[0], (64, 64))[0])[0]
    assert np.array_equal(client.images[-1], newest)
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
    assert tls["--grpc-use-ssl"] == tls["--grpc-use-ssl-mutual"] == "true" and tls["--grpc-root-cert"] == os.path.abspath("ca.pem")
    assert tls["--http-restricted-api"].startswith("metadata,inference,")  # plain HTTP: only health is open
    assert tls["--backend-config"] == "tensorrt,plugins=/x/libroi_trt_gdn1.so"
    assert ServerOptions().admin_key != ServerOptions().admin_key  # a fresh random key when none is given


def test_admin_key_comes_from_a_private_file_or_the_environment(tmp_path):
    """Review finding: the admin key was printed at start and could be given on the command line."""
    from roi_trt.errors import RoiTrtError, UsageError
    from roi_trt.serve.server import ADMIN_KEY_ENV, admin_key

    path = str(tmp_path / "admin.key")
    key, source = admin_key(path, environ={})  # made, with a random key only its owner may read
    assert os.stat(path).st_mode & 0o777 == 0o600 and len(key) >= 32 and source.startswith("made in ")
    assert key not in source and admin_key(path, environ={}) == (key, "from " + path)
    os.chmod(path, 0o640)
    with pytest.raises(RoiTrtError, match="must be yours and private \\(mode 0640"):
        admin_key(path, environ={})
    os.chmod(path, 0o600)
    with open(path, "w") as f:
        f.write("two words")
    with pytest.raises(RoiTrtError, match="one word"):
        admin_key(path, environ={})
    with pytest.raises(RoiTrtError, match="not a regular file"):
        admin_key(str(tmp_path), environ={})
    assert admin_key(None, {ADMIN_KEY_ENV: "s3cret-from-env"}) == ("s3cret-from-env", "from $" + ADMIN_KEY_ENV)
    with pytest.raises(UsageError, match="not both"):
        admin_key(path, {ADMIN_KEY_ENV: "s3cret-from-env"})
    assert admin_key(None, {})[0] is None  # ServerOptions then makes a random key nobody is told


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
                       on_reply=lambda frame_id, reply: replies.__setitem__(frame_id, reply))
    assert (stats.captured, stats.sent) == (5, 5) and client.frames == sorted(replies)
    reds = [float(replies[k].image[..., 0].mean()) for k in sorted(replies)]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 100  # RGB order kept, frames in order


# --- the camera across faults: spool, frame ids, drain, errors, lost replies, a killed camera ---


def _distinct_frames(directory, count, first=0):
    """`count` different 64x64 PNG frames (crops of a photo), named f00.png, f01.png, ... in capture order."""
    from PIL import Image

    rgb, _ = load_rgb(sample_photos()[0])
    names = []
    for k in range(first, first + count):
        name = "f{:02d}.png".format(k)
        Image.fromarray(rgb[8 * k:8 * k + 64, 4 * k:4 * k + 64]).save(os.path.join(str(directory), name))
        os.utime(os.path.join(str(directory), name), (1e9 + k, 1e9 + k))  # capture order = name order
        names.append(name)
    return names


@pytest.fixture()
def sink_service(tmp_path):
    """The demo model's decoding with a DirectorySink in tmp_path/sink: the server's side of these tests."""
    svc = DecodeService([ServedModel("demo", "demo", codec=open_codec("demo", parts=("decoder",)))],
                        sink=DirectorySink(str(tmp_path / "sink")))
    yield svc
    svc.close()


def _sink_digests(sink, camera):
    """{frame id: stream SHA-256} of what the sink stored for `camera`."""
    from roi_trt.serve.service import SINK_DIGEST_KEY, png_text

    directory = os.path.join(str(sink), camera)
    return dict((int(name[:-4]), png_text(os.path.join(directory, name), SINK_DIGEST_KEY))
                for name in os.listdir(directory) if not name.startswith("."))


def _local_digests(directory, names):
    from roi_trt.serve.service import stream_sha256

    with open_codec("demo", parts=("encoder",)) as codec:
        return sorted(stream_sha256(codec.encode(load_rgb(os.path.join(str(directory), n))[0])[0]) for n in names)


class Outage(object):
    """A server that cannot be reached until `up` is set; then `client` answers. Records what was tried."""

    def __init__(self, client):
        self.client, self.up, self.tried = client, threading.Event(), []

    def decode(self, data, camera=None, frame=None, image=False):
        self.tried.append(frame)
        if not self.up.is_set():
            raise Unavailable("server unreachable: [Errno 111] Connection refused")
        return self.client.decode(data, camera, frame, image)


def _stream(directory, client, **options):
    options.setdefault("log", lambda line: None)
    with open_codec("demo", parts=("encoder",)) as codec:
        return stream(DirectorySource(str(directory), poll=0.05, idle_exit=options.pop("idle_exit", 0.5)), codec,
                      client, camera="cam", **options)


def test_undelivered_frames_wait_in_the_spool_and_a_restarted_camera_sends_them_first(tmp_path, sink_service):
    frames = tmp_path / "frames"
    frames.mkdir()
    names = _distinct_frames(frames, 4)
    with Spool(str(tmp_path / "spool"), 1 << 30) as spool:  # the server is down for the whole first run
        first = _stream(frames, Outage(LocalClient(sink_service)), retry_for=0.3, spool=spool)
        assert len(spool) == 4
    assert (first.captured, first.spooled, first.sent, first.undelivered, first.unaccounted) == (4, 4, 0, 0, 0)
    assert not os.path.exists(str(tmp_path / "sink" / "cam"))
    names += _distinct_frames(frames, 1, first=4)  # a new file while the camera was off
    client = LocalClient(sink_service)
    with Spool(str(tmp_path / "spool"), 1 << 30) as spool:
        second = _stream(frames, client, spool=spool)
        assert len(spool) == 0
    assert (second.recovered, second.spool_sent, second.captured, second.sent, second.unaccounted) == (4, 4, 1, 1, 0)
    assert client.frames == sorted(client.frames)  # oldest first: the spool, then the new file
    stored = _sink_digests(tmp_path / "sink", "cam")
    assert sorted(stored) == client.frames and sorted(stored.values()) == _local_digests(frames, names)


def test_without_a_spool_undelivered_frames_are_counted(tmp_path, sink_service):
    _distinct_frames(tmp_path, 2)
    lines = []
    stats = _stream(tmp_path, Outage(LocalClient(sink_service)), retry_for=0.3, log=lines.append)
    assert (stats.captured, stats.undelivered, stats.lost, stats.unaccounted) == (2, 2, 2, 0)
    assert sum(line.startswith("undelivered") for line in lines) == 2


class LostReplies(object):
    """The server decodes and stores every frame, but the first reply for each frame never arrives."""

    def __init__(self, client):
        self.client, self.answered = client, set()

    def decode(self, data, camera=None, frame=None, image=False):
        reply = self.client.decode(data, camera, frame, image)
        if frame not in self.answered:
            self.answered.add(frame)
            raise Unavailable("server unreachable: timed out")
        return reply


def test_a_frame_whose_reply_was_lost_is_sent_again_and_stored_once(tmp_path, sink_service):
    frames = tmp_path / "frames"
    frames.mkdir()
    names = _distinct_frames(frames, 3)
    client = LostReplies(LocalClient(sink_service))
    stats = _stream(frames, client)
    assert (stats.captured, stats.sent, stats.refused, stats.unaccounted) == (3, 3, 0, 0)
    assert len(client.client.frames) == 6  # each decoded twice by the server ...
    stored = _sink_digests(tmp_path / "sink", "cam")  # ... and stored once
    assert sorted(stored) == sorted(client.answered) and sorted(stored.values()) == _local_digests(frames, names)


def test_frame_ids_never_repeat_across_restarts_even_when_the_clock_goes_back(tmp_path, monkeypatch):
    with Spool(str(tmp_path), 1 << 20) as spool:
        ids = FrameIds(spool)
        first = [ids.next() for _ in range(3)]
    assert first == sorted(set(first)) and abs(first[0] - time.time() * 1e6) < 60e6
    monkeypatch.setattr(time, "time", lambda: 1e9)  # a reboot without network time: back to 2001
    with Spool(str(tmp_path), 1 << 20) as spool:
        ids = FrameIds(spool)
        second = [ids.next() for _ in range(3)]
    assert second == sorted(set(second)) and second[0] > first[-1]
    plain = FrameIds()
    assert plain.next() < plain.next()


def test_a_spool_is_used_by_one_camera_at_a_time(tmp_path):
    from roi_trt.errors import RoiTrtError

    with Spool(str(tmp_path), 1 << 20):
        with pytest.raises(RoiTrtError, match="in use by another roi-trt stream"):
            Spool(str(tmp_path), 1 << 20)
    Spool(str(tmp_path), 1 << 20).close()


class RecordingSpool(Spool):
    def __init__(self, *args):
        super(RecordingSpool, self).__init__(*args)
        self.put_ids = []

    def put(self, frame_id, camera, data, dropped):
        self.put_ids.append(frame_id)
        super(RecordingSpool, self).put(frame_id, camera, data, dropped)


def test_a_full_spool_drops_its_oldest_frames_counted_and_logged(tmp_path, sink_service):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(5):  # the same picture five times: streams of one size
        shutil.copy(sample_photos()[2], str(frames / "f{}.jpg".format(k)))
        os.utime(str(frames / "f{}.jpg".format(k)), (1e9 + k, 1e9 + k))
    with open_codec("demo", parts=("encoder",)) as codec:
        size = len(codec.encode(load_rgb(sample_photos()[2])[0], (64, 64))[0])
    lines = []
    with RecordingSpool(str(tmp_path / "spool"), 2 * size + size // 2) as spool:
        stats = _stream(frames, Outage(LocalClient(sink_service)), size=(64, 64), retry_for=0.2, spool=spool,
                        log=lines.append)
        kept = [entry.frame for entry in spool._entries]
    assert (stats.captured, stats.spooled, stats.dropped, stats.unaccounted, stats.lost) == (5, 2, 3, 0, 0)
    assert kept == sorted(spool.put_ids)[-2:]  # the newest two stay
    assert any("spool full" in line and "dropped the oldest spooled frame" in line for line in lines)


def test_stop_drains_for_a_bounded_time_then_spools_the_rest(tmp_path, sink_service):
    """SIGTERM (stop) while the server is down: no frame is retried for --retry-for (an hour here)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    _distinct_frames(frames, 3)
    server, stop, result = Outage(LocalClient(sink_service)), threading.Event(), []
    with Spool(str(tmp_path / "spool"), 1 << 30) as spool:
        thread = threading.Thread(target=lambda: result.append(_stream(
            frames, server, retry_for=3600, drain_for=0.5, spool=spool, stop=stop, idle_exit=None)))
        thread.start()
        while not server.tried:
            time.sleep(0.05)
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
        assert len(spool) == 3
    stats = result[0]
    assert (stats.captured, stats.spooled, stats.sent, stats.undelivered, stats.unaccounted) == (3, 3, 0, 0, 0)


class TrackedSource(DirectorySource):
    closed = False

    def close(self):
        self.closed = True


class BrokenSource(TrackedSource):
    def frames(self, stop):
        for frame in super(BrokenSource, self).frames(stop):
            yield frame
            raise RuntimeError("camera unplugged")


class BuggyClient(object):
    def decode(self, data, camera=None, frame=None, image=False):
        raise KeyError("outputs")


@pytest.mark.parametrize("case", ["client", "on_reply", "source"])
def test_every_error_shuts_the_pipeline_down_and_releases_the_source(tmp_path, sink_service, case):
    _distinct_frames(tmp_path, 12)  # more than the queues hold: capture and encode are blocked when it fails
    before = threading.active_count()
    source = (BrokenSource if case == "source" else TrackedSource)(str(tmp_path), poll=0.05, idle_exit=None)

    def on_reply(frame_id, reply):
        raise ValueError("a bug in the caller's callback")

    client = BuggyClient() if case == "client" else LocalClient(sink_service, delay=0.1)
    with open_codec("demo", parts=("encoder",)) as codec:
        with pytest.raises((KeyError, ValueError, RuntimeError)):
            stream(source, codec, client, log=lambda line: None, queue_size=1,
                   on_reply=on_reply if case == "on_reply" else None)
    assert source.closed and threading.active_count() == before


def test_a_camera_is_released_when_sending_fails(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from roi_trt.serve.camera import open_source

    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(20):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.release()
    source = open_source(path)
    with open_codec("demo", parts=("encoder",)) as codec:
        with pytest.raises(KeyError):
            stream(source, codec, BuggyClient(), log=lambda line: None, queue_size=1)
    assert not source.capture.isOpened()


def _reply_body(outputs):
    """A Triton HTTP reply: JSON header, then the binary outputs [(name, datatype, array)]."""
    import json

    meta = {"outputs": [{"name": n, "datatype": t, "shape": list(a.shape), "parameters": {"binary_data_size": a.nbytes}}
                        for n, t, a in outputs]}
    header = json.dumps(meta).encode("utf-8")
    return header, header + b"".join(a.tobytes() for _, _, a in outputs)


@pytest.fixture()
def fake_server():
    """An HTTP server on 127.0.0.1 answering every request with status 200 and `replies[0]` (body, header length)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    replies = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body, length = replies[0]
            self.send_response(200)
            if length is not None:
                self.send_header("Inference-Header-Content-Length", str(length))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield "http://127.0.0.1:{}".format(server.server_address[1]), replies
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_malformed_reply_is_a_clear_error_and_the_frame_is_kept(fake_server, tmp_path):
    from roi_trt.serve.client import connect

    url, replies = fake_server
    size = np.array([[2, 3]], np.int32)
    header, good = _reply_body([("SIZE", "INT32", size), ("IMAGE", "UINT8", np.full((1, 2, 3, 3), 7, np.uint8))])
    _, float_size = _reply_body([("SIZE", "FP32", size.astype(np.float32))])
    with connect(url) as client:
        replies[:] = [(good, len(header))]
        reply = client.decode(b"stream", image=True)
        assert reply.size == (2, 3) and reply.image.shape == (2, 3, 3) and int(reply.image.max()) == 7
        for body, length in [(b"<html>Log in to the Wi-Fi</html>", None), (b'{"model_name": "roi_decode"}', None),
                             (good, len(good) + 10), (good[:-5], len(header)), (good, len(header) - 1),
                             (float_size, len(float_size) - size.nbytes)]:
            replies[:] = [(body, length)]
            with pytest.raises(Unavailable, match="malformed reply from the server"):
                client.decode(b"stream", image=True)
        replies[:] = [(good[:len(header) - 20] + good[len(header):], len(header) - 20)]
        _distinct_frames(tmp_path, 2)
        with Spool(str(tmp_path / "spool"), 1 << 30) as spool:
            lines = []
            stats = _stream(tmp_path, client, retry_for=0.3, spool=spool, log=lines.append)
    assert (stats.captured, stats.spooled, stats.unaccounted) == (2, 2, 0)
    assert any("malformed reply" in line for line in lines)


KILLED_CAMERA = r"""
import sys
import threading

from roi_trt.codec import open_codec
from roi_trt.serve.camera import DirectorySource, stream
from roi_trt.serve.client import Reply
from roi_trt.serve.service import DecodeService, DirectorySink, ServedModel
from roi_trt.serve.spool import Spool

frames, spool, sink, answer = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
service = DecodeService([ServedModel("demo", "demo", codec=open_codec("demo", parts=("decoder",)))],
                        sink=DirectorySink(sink))


class Client(object):
    # The server stores every frame it is sent but answers only `answer` of them: then the camera is killed.
    def decode(self, data, camera=None, frame=None, image=False):
        rgb = service.decode(data, camera, frame)
        if len(served) == answer:
            print("waiting for a reply", flush=True)
            threading.Event().wait()
        served.append(frame)
        return Reply(rgb.shape[:2], None)


served = []
with Spool(spool, 1 << 30) as kept, open_codec("demo", parts=("encoder",)) as codec:
    stream(DirectorySource(frames, poll=0.05), codec, Client(), camera="cam", spool=kept, queue_size=2)
"""


def test_a_camera_killed_while_a_frame_is_in_flight_loses_and_duplicates_none(tmp_path, sink_service):
    import signal
    import subprocess
    import sys

    frames = tmp_path / "frames"
    frames.mkdir()
    names = _distinct_frames(frames, 8)
    camera = subprocess.Popen([sys.executable, "-c", KILLED_CAMERA, str(frames), str(tmp_path / "spool"),
                               str(tmp_path / "sink"), "3"], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert camera.stdout.readline().strip() == "waiting for a reply"
    finally:
        camera.send_signal(signal.SIGKILL)
        camera.wait()
    in_flight = max(_sink_digests(tmp_path / "sink", "cam"))  # stored, but its reply never came
    client = LocalClient(sink_service)
    with Spool(str(tmp_path / "spool"), 1 << 30) as spool:
        stats = _stream(frames, client, spool=spool)
    assert in_flight in client.frames  # taken again under its id: delivered, not refused
    assert stats.sent == stats.recovered + stats.captured and (stats.refused, stats.unaccounted) == (0, 0)
    stored = _sink_digests(tmp_path / "sink", "cam")
    assert sorted(stored.values()) == _local_digests(frames, names)  # each of the 8 frames exactly once


def test_sigterm_ends_the_stream_command_after_the_drain_time_with_the_rest_spooled(tmp_path):
    """`roi-trt stream` as a service manager stops it: no frame is retried for --retry-for (an hour) after SIGTERM."""
    import signal
    import subprocess
    import sys

    from roi_trt.serve.server import free_ports

    (port,) = free_ports(1)  # nothing listens there: the server is down
    frames = tmp_path / "frames"
    frames.mkdir()
    _distinct_frames(frames, 3)
    camera = subprocess.Popen(
        [sys.executable, "-m", "roi_trt.cli", "stream", str(frames), "--server", "http://127.0.0.1:{}".format(port),
         "--camera", "cam", "--spool", str(tmp_path / "spool"), "--retry-for", "3600", "--drain-for", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        while "retrying" not in camera.stderr.readline():
            assert camera.poll() is None
        camera.send_signal(signal.SIGTERM)
        out, err = camera.communicate(timeout=60)
    finally:
        if camera.poll() is None:
            camera.kill()
    assert camera.returncode == 0, err  # nothing lost: the frames wait in the spool
    assert "captured 3, recovered 0: sent 0, sent from the spool 0, spooled 3," in out, out + err
    assert "stopping: sending the frames already captured for up to 1 s, then spooling the rest" in err
    assert len(spool_entries(str(tmp_path / "spool"))) == 3


def test_synthesis_batches_count_frames_not_requests():
    """A Python synthesis model gets requests of several frames each (roi_decode stacks a batch's latents): its
    batches hold at most as many frames as the memory budget or an engine's profile allows, and a request
    with more frames than that runs alone (frame by frame)."""
    from roi_trt.serve.triton_model import _frame_chunks

    frames = {0: 3, 1: 1, 2: 2, 3: 8, 4: 1}
    assert list(_frame_chunks(range(5), frames.get, 4)) == [[0, 1], [2], [3], [4]]
    assert list(_frame_chunks(range(5), frames.get, 1)) == [[0], [1], [2], [3], [4]]
    assert list(_frame_chunks([], frames.get, 4)) == []


def test_a_sink_that_cannot_write_fails_the_model_load_not_every_frame(tmp_path):
    from click.testing import CliRunner

    from roi_trt.cli import main
    from roi_trt.errors import RoiTrtError
    from roi_trt.serve.service import DirectorySink

    with pytest.raises(RoiTrtError, match="/sys/kernel/sink: cannot be written"):  # read-only, even for root
        DirectorySink("/sys/kernel/sink")
    result = CliRunner().invoke(main, ["serve", "repo", "demo", "-o", str(tmp_path / "repo"), "--sink-dir",
                                       "/sys/kernel/sink"])
    assert result.exit_code == 1 and "/sys/kernel/sink: cannot be written" in result.output
    assert not (tmp_path / "repo").exists()
