"""A fault drill of the decode service: cameras lose and duplicate no frame while the server and cameras are
killed. tests/test_serve.py runs it small, benchmarks/serve_load.py with more frames.

Real processes throughout, on 127.0.0.1: the server is a ServeProcess (`roi-trt serve run`, its repository
writing a sink directory); each camera is `roi-trt stream` on a directory source with a spool of its own,
and a writer adds a new frame to every camera's directory each `interval` seconds (a different crop of a
bundled photo each time, written under a dot name and renamed). The drill:

1. the cameras stream until each has frames in the sink;
2. the server is killed with SIGKILL (tritonserver and its stubs, with requests in flight); the cameras
   retry for `retry_for` seconds, then spool;
3. while its spool holds frames, the first camera is killed with SIGKILL and started again with the same
   spool; the server is started again on the same ports once it was down for `outage` seconds;
4. once every spool is empty, the last camera is killed while it streams, and started again;
5. once `frames` frames were written for every camera, the writer stops and the cameras exit when idle.

Checked: every frame written is in the sink exactly once (the stream digest its PNG records is that of this
process's encoding of the frame, and no two files hold one frame), its pixels equal this process's decode,
and every camera run that ended counted all its frames, none lost.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from ..errors import RoiTrtError
from ..imageio import load_rgb
from ..samples import sample_photos
from .service import SINK_DIGEST_KEY, png_text, stream_sha256
from .spool import spool_entries


class FrameWriter(object):
    """A new frame in each camera's directory every `interval` seconds (in a thread) until stop()."""

    def __init__(self, directories, size, interval):
        self.directories, self.size, self.interval = directories, size, interval
        self.photos = [load_rgb(path)[0] for path in sample_photos()]
        self.count = 0  # frames written per camera
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True
        self.errors = []

    def frame(self, camera, k):
        """Camera `camera`'s k-th frame: a size x size crop of a bundled photo, at a different place for each k."""
        photo, s = self.photos[camera % len(self.photos)], self.size
        y, x = 7 * k % (photo.shape[0] - s), 13 * k % (photo.shape[1] - s)
        return photo[y:y + s, x:x + s]

    def _run(self):
        from PIL import Image

        try:
            while True:
                for camera, directory in enumerate(self.directories):
                    name = "f{:05d}.png".format(self.count)
                    Image.fromarray(self.frame(camera, self.count)).save(os.path.join(directory, "." + name))
                    os.rename(os.path.join(directory, "." + name), os.path.join(directory, name))
                self.count += 1
                if self._stop.wait(self.interval):
                    return
        except BaseException as exc:  # reported by the drill
            self.errors.append(exc)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()


class CameraProcess(object):
    """`roi-trt stream DIRECTORY --spool SPOOL --json`, as a service manager runs it: started again after
    kill() with the same spool. `runs`: per run that ended, its counts (with `status`); None per kill."""

    def __init__(self, name, url, directory, spool, log_dir, options=(), python=sys.executable):
        self.name, self.spool, self.log_dir = name, spool, log_dir
        self.argv = [python, "-m", "roi_trt.cli", "stream", directory, "--server", url, "--camera", name,
                     "--spool", spool, "--json"] + list(options)
        self.runs, self.process = [], None

    def _path(self, suffix):
        return os.path.join(self.log_dir, "{}-{}.{}".format(self.name, len(self.runs), suffix))

    def start(self):
        with open(self._path("out"), "w") as out, open(self._path("log"), "w") as err:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=err)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.runs.append(None)

    def finish(self, timeout):
        """Wait until this run ends; its counts join `runs`."""
        status = self.process.wait(timeout)
        with open(self._path("out")) as f:
            lines = f.read().splitlines()
        counts = json.loads(lines[-1]) if lines else {}
        counts["status"] = status
        self.runs.append(counts)

    def log_tail(self):
        with open(self._path("log")) as f:
            return f.read()[-2000:]

    def spooled(self):
        return len(spool_entries(self.spool)) if os.path.isdir(self.spool) else 0


def _stored(sink, camera):
    """{file name: stream digest} of what the sink holds for `camera`."""
    directory = os.path.join(sink, camera)
    if not os.path.isdir(directory):
        return {}
    return dict((name, png_text(os.path.join(directory, name), SINK_DIGEST_KEY))
                for name in os.listdir(directory) if not name.startswith("."))


def fault_drill(server, sink, workdir, cameras=2, frames=24, size=64, interval=0.25, retry_for=1.0, outage=0.0,
                timeout=90.0, log=lambda line: None):
    """The drill (see the module's docstring) against `server`, a started ServeProcess whose repository writes
    its sink to `sink` -> dict of what was measured; its "problems" lists every failed check."""
    protocols = ("http", "grpc")
    directories = [os.path.join(workdir, "frames{}".format(c)) for c in range(cameras)]
    for directory in directories:
        os.makedirs(directory)
    writer = FrameWriter(directories, size, interval)
    idle_exit = max(3.0, 4 * interval)
    cams = [CameraProcess("drill{}".format(c), server.url(protocols[c % 2]), directories[c],
                          os.path.join(workdir, "spool{}".format(c)), workdir,
                          ("--retry-for", str(retry_for), "--idle-exit", str(idle_exit)))
            for c in range(cameras)]

    def wait(what, condition):
        deadline = time.monotonic() + timeout
        while not condition():
            for cam in cams:
                if cam.process.poll() is not None:
                    raise RoiTrtError("fault drill: camera {} exited ({}) before {}:\n{}".format(
                        cam.name, cam.process.returncode, what, cam.log_tail()))
            if writer.errors or time.monotonic() > deadline:
                raise RoiTrtError("fault drill: {} before {}".format(writer.errors or "timed out", what))
            time.sleep(0.1)
        log("fault drill: {}".format(what))

    start = time.monotonic()
    try:
        writer.start()
        for cam in cams:
            cam.start()
        wait("every camera has frames in the sink", lambda: all(len(_stored(sink, c.name)) >= 2 for c in cams))
        server.kill()
        killed = time.monotonic()
        wait("the first camera spooled frames", lambda: cams[0].spooled() >= 2)
        cams[0].kill()
        cams[0].start()
        time.sleep(max(0.0, killed + outage - time.monotonic()))
        server.start()
        back = time.monotonic()
        wait("every spool is empty", lambda: all(c.spooled() == 0 for c in cams))
        drained = time.monotonic()
        streamed = len(_stored(sink, cams[-1].name))
        wait("the last camera streams", lambda: len(_stored(sink, cams[-1].name)) > streamed)
        cams[-1].kill()
        cams[-1].start()
        wait("{} frames were written for every camera".format(frames), lambda: writer.count >= frames)
        writer.stop()
        for cam in cams:
            cam.finish(timeout)
    finally:
        writer.stop()
        for cam in cams:
            if cam.process is not None and cam.process.poll() is None:
                cam.kill()
    seconds = time.monotonic() - start
    result = _check(writer, cams, sink)
    finished = [run for cam in cams for run in cam.runs if run is not None]
    result.update(cameras=cameras, frames=writer.count * cameras, size=size, seconds=round(seconds, 1),
                  server_down_s=round(back - killed, 1), backlog_s=round(drained - back, 1),
                  camera_kills=sum(run is None for cam in cams for run in cam.runs),
                  **dict((key, sum(run.get(key, 0) for run in finished))
                         for key in ("sent", "spool_sent", "recovered", "dropped", "refused", "undelivered", "failed")))
    return result


def _check(writer, cams, sink):
    """Exactly once, equal to the local decode, complete counts -> {sink_files, max_abs_diff, problems}."""
    from ..codec import open_codec

    problems, files, max_diff = [], 0, 0
    with open_codec("demo") as codec:
        for c, cam in enumerate(cams):
            local = {}
            for k in range(writer.count):
                data, _ = codec.encode(writer.frame(c, k))
                local[stream_sha256(data)] = codec.decode(data)[0]
            if len(local) < writer.count:
                problems.append("camera {}: two frames have one stream".format(cam.name))
            stored = _stored(sink, cam.name)
            files += len(stored)
            held = sorted(stored.values())
            if held != sorted(local):
                problems.append("camera {}: {} frames written, {} in the sink, {} of them missing, {} not written "
                                "or twice".format(cam.name, writer.count, len(held), len(set(local) - set(held)),
                                                  len(held) - len(set(held) & set(local))))
            for name, digest in stored.items():
                if digest in local:
                    image = load_rgb(os.path.join(sink, cam.name, name))[0]
                    max_diff = max(max_diff, int(np.abs(image.astype(int) - local[digest].astype(int)).max()))
            for k, run in enumerate(cam.runs):
                if run is None:
                    continue
                outcomes = sum(run[f] for f in ("sent", "spool_sent", "spooled", "dropped", "refused", "undelivered",
                                                "failed"))
                if run["status"] != 0 or run["captured"] + run["recovered"] != outcomes or run["spooled"]:
                    problems.append("camera {} run {}: {}".format(cam.name, k, run))
        if len(cams[0].runs) < 2 or not (cams[0].runs[1] or {}).get("recovered"):
            problems.append("camera {} restarted with frames in its spool recovered none".format(cams[0].name))
    return {"sink_files": files, "max_abs_diff": max_diff, "problems": problems, "passed": int(not problems)}
