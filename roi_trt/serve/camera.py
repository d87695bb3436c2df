"""`roi-trt stream`: the camera side of the decode service (torch-free, Python 3.6).

Frames come from a directory being written, a video file or a camera (OpenCV), are encoded here with
the edge backend and sent to the server, in three threads joined by bounded queues, so memory stays
bounded whatever the server does:

- capture -> [frames, `queue_size`] -> encode -> [streams, 2] -> send
- `drop="none"`: when the server is slow, capture waits (backpressure; a live camera's driver then drops
  frames itself); `drop="oldest"`: the oldest waiting frame is dropped for the new one. Every dropped
  frame is counted and reported, never silent.
- A server that cannot be reached is retried with exponential backoff (0.5 s doubling to 30 s) for up
  to `retry_for` seconds per frame; then that frame counts as undelivered and the next is tried. A frame
  the server refuses (its error is the reason) is counted and not sent again.
"""

import os
import queue
import threading
import time
from collections import namedtuple

from ..errors import RoiTrtError
from ..imageio import IMAGE_SUFFIXES, load_rgb
from .client import Refused, Unavailable

Frame = namedtuple("Frame", "index name rgb")
DROP_POLICIES = ("none", "oldest")
_END = object()


class DirectorySource(object):
    """Image files appearing in `directory`, oldest first, each once. A file is taken once its size and
    modification time have not changed for `settle` seconds (its writer may still be writing); writers
    that write under a temporary name (a dot file, another suffix) and rename never have a frame read
    early. Files are only read, never moved or deleted. Stops after `idle_exit` seconds without a new
    file (None: never), or when `stop` is set."""

    def __init__(self, directory, poll=0.2, settle=0.5, idle_exit=None):
        if not os.path.isdir(directory):
            raise RoiTrtError("{}: no such directory".format(directory))
        self.directory, self.poll, self.settle, self.idle_exit = directory, poll, settle, idle_exit
        self.name = directory

    def _candidates(self):
        out = []
        for name in os.listdir(self.directory):
            if not name.lower().endswith(IMAGE_SUFFIXES) or name.startswith("."):
                continue
            path = os.path.join(self.directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed meanwhile
            out.append(((st.st_mtime, name), path, (st.st_size, st.st_mtime_ns)))
        return sorted(out)

    def frames(self, stop):
        index, mark, at_mark = 0, None, set()  # files up to (mtime, name) `mark` were taken
        seen, last_new = {}, time.monotonic()  # path -> (size and mtime, since when unchanged)
        while not stop.is_set():
            now, ready = time.monotonic(), []
            for key, path, signature in self._candidates():
                if (mark is not None and key < mark) or path in at_mark:
                    continue
                if path not in seen or seen[path][0] != signature:
                    seen[path] = (signature, now)
                elif now - seen[path][1] >= self.settle:
                    ready.append((key, path))
            for key, path in ready:
                del seen[path]
                if mark is None or key > mark:
                    mark, at_mark = key, set()
                at_mark.add(path)
                last_new = time.monotonic()
                try:
                    rgb, _ = load_rgb(path)
                except RoiTrtError as exc:
                    yield exc
                    continue
                yield Frame(index, path, rgb)
                index += 1
            if self.idle_exit is not None and not seen and time.monotonic() - last_new > self.idle_exit:
                return
            stop.wait(self.poll)


class VideoSource(object):
    """Frames of a video file, a camera index (`0`) or a stream URL, through OpenCV."""

    def __init__(self, source):
        from ..optional import require

        cv2 = self._cv2 = require("cv2", "roi-trt stream from a video or camera")
        self.name = source
        self.capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
        if not self.capture.isOpened():
            raise RoiTrtError("{}: OpenCV cannot open this video or camera".format(source))

    def frames(self, stop):
        index = 0
        try:
            while not stop.is_set():
                ok, bgr = self.capture.read()
                if not ok:
                    return
                yield Frame(index, "{}#{}".format(self.name, index), bgr[:, :, ::-1].copy())
                index += 1
        finally:
            self.capture.release()


def open_source(source, idle_exit=None):
    """A directory, a video file, a camera index or a stream URL -> a source with `frames(stop)`."""
    if os.path.isdir(source):
        return DirectorySource(source, idle_exit=idle_exit)
    if os.path.isfile(source) or source.isdigit() or "://" in source:
        return VideoSource(source)
    raise RoiTrtError("{}: not a directory, video file, camera index or stream URL".format(source))


class StreamStats(object):
    """Counts of what happened to every frame: each captured frame ends in exactly one of sent,
    refused, undelivered, failed (could not be read or encoded) or dropped."""

    FIELDS = ("captured", "sent", "refused", "undelivered", "failed", "dropped")

    def __init__(self):
        self.lock = threading.Lock()
        for field in self.FIELDS:
            setattr(self, field, 0)
        self.bytes = self.pixels = 0
        self.start = time.monotonic()

    def add(self, field, count=1):
        with self.lock:
            setattr(self, field, getattr(self, field) + count)

    def as_dict(self):
        elapsed = time.monotonic() - self.start
        out = dict((f, getattr(self, f)) for f in self.FIELDS)
        out.update(seconds=round(elapsed, 3), frames_per_s=round(self.sent / elapsed, 3) if elapsed > 0 else None,
                   bpp=round(8.0 * self.bytes / self.pixels, 5) if self.pixels else None)
        return out

    def line(self):
        s = self.as_dict()
        return ("captured {captured}, sent {sent}, refused {refused}, undelivered {undelivered}, failed {failed}, "
                "dropped {dropped}; {frames_per_s} frames/s, {bpp} bpp").format(**s)

    @property
    def complete(self):
        return self.sent == self.captured


class _Backoff(object):
    def __init__(self, first=0.5, most=30.0):
        self.first, self.most, self.delay = first, most, first

    def next(self):
        delay, self.delay = self.delay, min(self.most, self.delay * 2)
        return delay

    def reset(self):
        self.delay = self.first


def stream(source, codec, client, camera=None, size=None, drop="none", queue_size=8, retry_for=60.0, log=print,
           stop=None, on_reply=None):
    """Capture, encode and send every frame of `source`; -> StreamStats. Runs until the source ends or
    `stop` (a threading.Event) is set; frames already captured are still sent then.

    `on_reply(frame_index, Reply)` sees every answer (e.g. to keep the decoded images)."""
    if drop not in DROP_POLICIES:
        raise RoiTrtError("drop policy must be one of {}".format(", ".join(DROP_POLICIES)))
    stop = stop or threading.Event()
    stats = StreamStats()
    frames, streams = queue.Queue(maxsize=queue_size), queue.Queue(maxsize=2)
    crashes = []
    last_drop_log = [0.0]

    def put_frame(frame):
        if drop == "none":
            frames.put(frame)  # backpressure: wait for the encoder
            return
        while True:
            try:
                frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    dropped = frames.get_nowait()
                except queue.Empty:
                    continue
                stats.add("dropped")
                if time.monotonic() - last_drop_log[0] > 1.0:
                    last_drop_log[0] = time.monotonic()
                    log("dropped frame {} (the server is behind; {} dropped so far)".format(dropped.index, stats.dropped))

    def capture():
        try:
            for frame in source.frames(stop):
                stats.add("captured")
                if isinstance(frame, RoiTrtError):
                    stats.add("failed")
                    log("error: {}".format(frame))
                    continue
                put_frame(frame)
        except BaseException as exc:  # a bug or a broken camera: stop, report in the caller
            crashes.append(exc)
        finally:
            frames.put(_END)

    def encode():
        while True:
            frame = frames.get()
            if frame is _END:
                streams.put(_END)
                return
            try:
                data, _ = codec.encode(frame.rgb, size)
            except RoiTrtError as exc:
                stats.add("failed")
                log("error: {}: {}".format(frame.name, exc))
                continue
            except BaseException as exc:
                crashes.append(exc)
                stop.set()
                continue
            pixels = frame.rgb.shape[0] * frame.rgb.shape[1] if size is None else size[0] * size[1]
            streams.put((frame, data, pixels))

    def send(frame, data):
        backoff, give_up = _Backoff(), time.monotonic() + retry_for
        while True:
            try:
                return client.decode(data, camera=camera, frame=frame.index, image=on_reply is not None)
            except Unavailable as exc:
                if time.monotonic() >= give_up:
                    raise
                delay = backoff.next()
                log("{}; retrying frame {} in {:.1f} s".format(exc, frame.index, delay))
                time.sleep(delay)

    threads = [threading.Thread(target=capture), threading.Thread(target=encode)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    while True:
        item = streams.get()
        if item is _END:
            break
        frame, data, pixels = item
        try:
            reply = send(frame, data)
        except Refused as exc:
            stats.add("refused")
            log("refused: {}: {}".format(frame.name, exc))
            continue
        except Unavailable as exc:
            stats.add("undelivered")
            log("undelivered: {}: {} (gave up after {:.0f} s)".format(frame.name, exc, retry_for))
            continue
        stats.add("sent")
        with stats.lock:
            stats.bytes += len(data)
            stats.pixels += pixels
        if on_reply is not None:
            on_reply(frame.index, reply)
    for thread in threads:
        thread.join()
    if crashes:
        raise crashes[0]
    return stats
