"""`roi-trt stream`: the camera side of the decode service (torch-free, Python 3.6).

Frames come from a directory being written, a video file or a camera (OpenCV), are encoded here with
the edge backend and sent to the server, in three threads joined by bounded queues, so memory stays
bounded whatever the server does:

- capture -> [frames, `queue_size`] -> encode -> [streams, 2] -> send
- `drop="none"`: when the server is slow, capture waits (backpressure; a live camera's driver then drops
  frames itself); `drop="oldest"`: the oldest waiting frame is dropped for the new one.
- Each frame carries (camera, frame id). Ids never repeat for a camera, across restarts too
  (roi_trt.serve.spool.FrameIds), and the server's sink takes a frame whose stream it already holds as
  delivered: a frame sent again because its reply was lost is stored once and counted sent.
- A server that cannot be reached is retried with exponential backoff (0.5 s doubling to 30 s) for up to
  `retry_for` seconds per frame. A frame still not delivered then goes to the spool (roi_trt.serve.spool),
  and so does every later frame while the spool holds any, so the order stays; meanwhile the oldest
  spooled frame is tried with the same backoff, and once the server takes it the spool is sent oldest
  first and frames go live again. Without a spool such a frame is undelivered: lost. A frame the server
  refuses (its error is the reason) is counted and not sent again.
- `stop` (SIGTERM, the first Ctrl-C) ends capturing; what was captured is still sent for `drain_for`
  seconds, and what is left then goes to the spool without waiting for the server.
- Any error shuts the three threads down and releases the source before it is raised.

Every frame ends in exactly one count of StreamStats.
"""

import os
import queue
import threading
import time
from collections import namedtuple

from .. import bitstream
from ..errors import RoiTrtError
from ..imageio import IMAGE_SUFFIXES, load_rgb
from .client import Refused, Unavailable
from .spool import CaptureJournal, FrameIds, SpoolTooSmall

Frame = namedtuple("Frame", "name rgb")
DROP_POLICIES = ("none", "oldest")
_END = object()
_POLL = 0.2  # seconds between looks at the stop and abort flags


class DirectorySource(object):
    """Image files appearing in `directory`, oldest first, each once. A file is taken once its size and
    modification time have not changed for `settle` seconds (its writer may still be writing); writers
    that write under a temporary name (a dot file, another suffix) and rename never have a frame read
    early. Files are only read, never moved or deleted. Stops after `idle_exit` seconds without a new
    file (None: never), or when `stop` is set. `position()` and `resume()` carry where it is to a
    restarted camera (roi_trt.serve.spool.CaptureJournal)."""

    def __init__(self, directory, poll=0.2, settle=0.5, idle_exit=None):
        if not os.path.isdir(directory):
            raise RoiTrtError("{}: no such directory".format(directory))
        self.directory, self.poll, self.settle, self.idle_exit = directory, poll, settle, idle_exit
        self.name = directory
        self._mark, self._at_mark = None, set()  # files up to (mtime_ns, name) `_mark` were taken

    def position(self):
        return [self._mark and list(self._mark), sorted(self._at_mark)]

    def resume(self, position):
        mark, at_mark = position
        self._mark, self._at_mark = mark and tuple(mark), set(at_mark)

    def retake(self, name):
        """The frame of a file taken before (by a run that did not finish it) -> Frame, or RoiTrtError."""
        path = os.path.join(self.directory, name)
        try:
            return Frame(path, load_rgb(path)[0])
        except RoiTrtError as exc:
            return exc

    def close(self):
        pass

    def _candidates(self):
        out = []
        for name in os.listdir(self.directory):
            if not name.lower().endswith(IMAGE_SUFFIXES) or name.startswith("."):
                continue
            try:
                st = os.stat(os.path.join(self.directory, name))
            except OSError:
                continue  # removed meanwhile
            out.append(((st.st_mtime_ns, name), (st.st_size, st.st_mtime_ns)))
        return sorted(out)

    def frames(self, stop):
        seen, last_new = {}, time.monotonic()  # name -> (size and mtime, since when unchanged)
        while not stop.is_set():
            now, ready = time.monotonic(), []
            for key, signature in self._candidates():
                name = key[1]
                if (self._mark is not None and key < self._mark) or name in self._at_mark:
                    continue
                if name not in seen or seen[name][0] != signature:
                    seen[name] = (signature, now)
                elif now - seen[name][1] >= self.settle:
                    ready.append(key)
            for key in ready:
                del seen[key[1]]
                if self._mark is None or key > self._mark:
                    self._mark, self._at_mark = key, set()
                self._at_mark.add(key[1])
                last_new = time.monotonic()
                yield self.retake(key[1])
            if self.idle_exit is not None and not seen and time.monotonic() - last_new > self.idle_exit:
                return
            stop.wait(self.poll)


class VideoSource(object):
    """Frames of a video file, a camera index (`0`) or a stream URL, through OpenCV."""

    def __init__(self, source):
        from ..optional import require

        cv2 = require("cv2", "roi-trt stream from a video or camera")
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
                yield Frame("{}#{}".format(self.name, index), bgr[:, :, ::-1].copy())
                index += 1
        finally:
            self.close()

    def close(self):
        """Release the camera (or file); safe to call again."""
        self.capture.release()


def open_source(source, idle_exit=None):
    """A directory, a video file, a camera index or a stream URL -> a source with `frames(stop)` and `close()`."""
    if os.path.isdir(source):
        return DirectorySource(source, idle_exit=idle_exit)
    if os.path.isfile(source) or source.isdigit() or "://" in source:
        return VideoSource(source)
    raise RoiTrtError("{}: {}".format(source, "no such file or directory" if not os.path.lexists(source) else
                                      "not a directory, video file, camera index or stream URL"))


class StreamStats(object):
    """What happened to every frame. Each frame captured in this run or recovered from an earlier one (found
    in the spool, or taken from a directory and not finished when that run was killed) ends in exactly one
    of: sent; sent from the spool; spooled (still there, for the next run); dropped (by the queue's or the
    spool's policy); refused (by the server, with its reason); undelivered (not sent in time and no spool
    to keep it); failed (could not be read or encoded). So captured + recovered = the sum of those."""

    SOURCES = ("captured", "recovered")
    OUTCOMES = ("sent", "spool_sent", "spooled", "dropped", "refused", "undelivered", "failed")
    FIELDS = SOURCES + OUTCOMES

    def __init__(self):
        self.lock = threading.Lock()
        for field in self.FIELDS:
            setattr(self, field, 0)
        self.bytes = self.pixels = 0
        self.start = time.monotonic()

    def add(self, field, count=1):
        with self.lock:
            setattr(self, field, getattr(self, field) + count)

    def move(self, source, target):
        """One frame's count from `source` to `target` (a spooled frame sent, refused or dropped)."""
        with self.lock:
            setattr(self, source, getattr(self, source) - 1)
            setattr(self, target, getattr(self, target) + 1)

    @property
    def unaccounted(self):
        """Frames not in any outcome yet (0 once stream() returned)."""
        return sum(getattr(self, f) for f in self.SOURCES) - sum(getattr(self, f) for f in self.OUTCOMES)

    @property
    def lost(self):
        """Frames the server will never decode other than by policy: refused, undelivered or failed."""
        return self.refused + self.undelivered + self.failed

    def as_dict(self):
        elapsed = time.monotonic() - self.start
        delivered = self.sent + self.spool_sent
        out = dict((f, getattr(self, f)) for f in self.FIELDS)
        out.update(seconds=round(elapsed, 3), frames_per_s=round(delivered / elapsed, 3) if elapsed > 0 else None,
                   bpp=round(8.0 * self.bytes / self.pixels, 5) if self.pixels else None)
        return out

    def line(self):
        return ("captured {captured}, recovered {recovered}: sent {sent}, sent from the spool {spool_sent}, "
                "spooled {spooled}, dropped {dropped}, refused {refused}, undelivered {undelivered}, failed {failed}; "
                "{frames_per_s} frames/s, {bpp} bpp").format(**dict(
                    (k, "—" if v is None else v) for k, v in self.as_dict().items()))


class _Backoff(object):
    def __init__(self, first=0.5, most=30.0):
        self.first, self.most, self.delay = first, most, first

    def next(self):
        delay, self.delay = self.delay, min(self.most, self.delay * 2)
        return delay

    def reset(self):
        self.delay = self.first


class _RateLimitedLog(object):
    """At most one line a second (per instance): a long outage or a full spool does not flood the log."""

    def __init__(self, log):
        self.log, self.last = log, -1.0

    def __call__(self, line):
        if time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            self.log(line)


def stream(source, codec, client, camera=None, size=None, drop="none", queue_size=8, retry_for=60.0, log=print,
           stop=None, on_reply=None, spool=None, drain_for=5.0):
    """Capture, encode and send every frame of `source` (released when this returns); -> StreamStats.

    Runs until the source ends or `stop` (a threading.Event; set here too when an error ends the run) is
    set. `spool` (roi_trt.serve.spool.Spool): where frames wait while the server cannot take them; what an
    earlier run left there is sent first. `on_reply(frame_id, Reply)` sees every answer (e.g. to keep
    the decoded images)."""
    if drop not in DROP_POLICIES:
        raise RoiTrtError("drop policy must be one of {}".format(", ".join(DROP_POLICIES)))
    pipeline = _Pipeline(source, codec, client, camera, size, drop, queue_size, retry_for, log,
                         stop or threading.Event(), on_reply, spool, drain_for)
    return pipeline.run()


class _Pipeline(object):
    """One run of stream(): the three stages and what they share."""

    def __init__(self, source, codec, client, camera, size, drop, queue_size, retry_for, log, stop, on_reply, spool,
                 drain_for):
        self.source, self.codec, self.client, self.camera, self.size = source, codec, client, camera, size
        self.drop, self.retry_for, self.log, self.stop, self.on_reply = drop, retry_for, log, stop, on_reply
        self.spool, self.drain_for = spool, drain_for
        self.abort = threading.Event()  # an error: every stage ends now
        self.stats = StreamStats()
        self.frames, self.streams = queue.Queue(maxsize=queue_size), queue.Queue(maxsize=2)
        self.crashes = []
        self.stop_seen = None
        self.drop_log, self.spool_log = _RateLimitedLog(log), _RateLimitedLog(log)

    def run(self):
        threads = []
        try:
            self.ids = FrameIds(self.spool)
            self.journal = None
            if self.spool is not None:
                self.stats.add("recovered", len(self.spool))
                self.stats.add("spooled", len(self.spool))
                if isinstance(self.source, DirectorySource):
                    self.journal = CaptureJournal(self.spool, self.source.directory)
                    if self.journal.position is not None:
                        self.source.resume(self.journal.position)
                    for frame_id, _ in self.journal.recovered:
                        if frame_id in self.spool:  # spooled just before the kill: sent from there
                            self.journal.finished(frame_id)
            threads = [threading.Thread(target=self._guard, args=(stage,)) for stage in (self._capture, self._encode)]
            for thread in threads:
                thread.daemon = True
                thread.start()
            self._send()
        except BaseException:
            self.abort.set()
            raise
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            self.source.close()
            if self.journal is not None:
                self.journal.flush()
        if self.crashes:
            raise self.crashes[0]
        return self.stats

    # --- shared helpers ---

    def _guard(self, stage):
        try:
            stage()
        except BaseException as exc:  # a bug, a broken camera, a full disk: end the run, raise in the caller
            self.crashes.append(exc)
            self.abort.set()

    def _put(self, q, item):
        """Put, waiting while the queue is full; False if the run was aborted meanwhile."""
        while not self.abort.is_set():
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q, timeout):
        """An item, None if none came within `timeout`; raises _Aborted when the run was aborted."""
        if self.abort.is_set():
            raise _Aborted()
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            return None

    def _finish(self, frame_id, outcome):
        self.stats.add(outcome)
        if self.journal is not None:
            self.journal.finished(frame_id)

    def _drained(self):
        """True once `drain_for` seconds passed since `stop` was seen: what is left goes to the spool."""
        if not self.stop.is_set():
            return False
        if self.stop_seen is None:
            self.stop_seen = time.monotonic()
        return time.monotonic() - self.stop_seen >= self.drain_for

    def _pause(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._drained():
            if self.abort.wait(min(_POLL, end - time.monotonic())):
                raise _Aborted()

    # --- capture ---

    def _capture(self):
        frames = None
        try:
            for frame_id, name in (self.journal.recovered if self.journal is not None else ()):
                if frame_id not in self.journal.unfinished:
                    continue
                if self.stop.is_set():
                    return
                self.stats.add("recovered")
                if not self._take(frame_id, self.source.retake(name)):
                    return
            frames = self.source.frames(self.stop)
            for frame in frames:
                self.stats.add("captured")
                if isinstance(frame, RoiTrtError):
                    if self.journal is not None:
                        self.journal.passed(self.source.position())
                    self.stats.add("failed")
                    self.log("error: {}".format(frame))
                    continue
                frame_id = self.ids.next()
                if self.journal is not None:
                    self.journal.taken(frame_id, os.path.basename(frame.name), self.source.position())
                if not self._take(frame_id, frame):
                    return
        finally:
            if frames is not None:
                frames.close()
            self._put(self.frames, _END)

    def _take(self, frame_id, frame):
        """Queue a frame for encoding (by the drop policy); False if the run was aborted."""
        if isinstance(frame, RoiTrtError):
            self._finish(frame_id, "failed")
            self.log("error: {}".format(frame))
            return True
        if self.drop == "none":
            return self._put(self.frames, (frame_id, frame))  # backpressure: wait for the encoder
        while True:
            try:
                self.frames.put_nowait((frame_id, frame))
                return True
            except queue.Full:
                try:
                    dropped_id, dropped = self.frames.get_nowait()
                except queue.Empty:
                    continue
                self._finish(dropped_id, "dropped")
                self.drop_log("dropped frame {} (the server is behind; {} dropped so far)".format(
                    dropped.name, self.stats.dropped))

    # --- encode ---

    def _encode(self):
        while True:
            try:
                item = self._get(self.frames, _POLL)
            except _Aborted:
                return
            if item is None:
                continue
            if item is _END:
                self._put(self.streams, _END)
                return
            frame_id, frame = item
            try:
                data, _ = self.codec.encode(frame.rgb, self.size)
            except RoiTrtError as exc:
                self._finish(frame_id, "failed")
                self.log("error: {}: {}".format(frame.name, exc))
                continue
            if not self._put(self.streams, (frame_id, frame.name, data)):
                return

    # --- send ---

    def _send(self):
        """Send live frames, or spool them and send the spool while it holds any, until the source ended
        (and the spool is empty, or could not be sent for `retry_for` seconds, or the drain time is over)."""
        ended, backoff, next_try, progress = False, _Backoff(), 0.0, time.monotonic()
        try:
            while True:
                drained, backlog = self._drained(), self.spool is not None and len(self.spool) > 0
                if ended and (not backlog or drained or time.monotonic() - progress >= self.retry_for):
                    return
                if not ended:
                    due = backlog and not drained  # the oldest spooled frame is tried at next_try
                    wait = max(0.0, min(_POLL, next_try - time.monotonic())) if due else _POLL
                    item = self._get(self.streams, wait)
                    if item is _END:
                        ended, progress = True, time.monotonic()
                    elif item is not None and (backlog or drained):
                        self._keep(item, "behind {} spooled frames".format(len(self.spool)) if backlog else
                                   "the drain time after stop is over")
                    elif item is not None:
                        self._send_live(item)
                        next_try = time.monotonic()
                    if item is not None:
                        continue
                elif backlog:
                    self._pause(max(0.0, min(_POLL, next_try - time.monotonic())))
                if backlog and not drained and time.monotonic() >= next_try:
                    if self._send_spooled():
                        backoff.reset()
                        progress = next_try = time.monotonic()
                    else:
                        next_try = time.monotonic() + backoff.next()
        except _Aborted:
            return

    def _decode(self, data, camera, frame_id):
        reply = self.client.decode(data, camera=camera, frame=frame_id, image=self.on_reply is not None)
        header, _ = bitstream.unpack(data)
        with self.stats.lock:
            self.stats.bytes += len(data)
            self.stats.pixels += header.height * header.width
        if self.on_reply is not None:
            self.on_reply(frame_id, reply)

    def _send_live(self, item):
        frame_id, name, data = item
        backoff, give_up = _Backoff(), time.monotonic() + self.retry_for
        while True:
            try:
                self._decode(data, self.camera, frame_id)
            except Refused as exc:
                self._finish(frame_id, "refused")
                self.log("refused: {}: {}".format(name, exc))
            except Unavailable as exc:
                delay = min(backoff.next(), give_up - time.monotonic())
                if delay <= 0 or self._drained():
                    self._keep(item, "{} (not delivered within {:g} s)".format(exc, self.retry_for))
                    return
                self.log("{}; retrying {} in {:.1f} s".format(exc, name, delay))
                self._pause(delay)
                continue
            else:
                self._finish(frame_id, "sent")
            return

    def _keep(self, item, reason):
        """A frame the server did not take: into the spool, or undelivered without one."""
        frame_id, name, data = item
        if self.spool is None:
            self._finish(frame_id, "undelivered")
            self.log("undelivered: {}: {}".format(name, reason))
            return
        def dropped(entry):
            self.stats.move("spooled", "dropped")
            self.drop_log("spool full ({} bytes): dropped the oldest spooled frame {} ({} dropped so far)".format(
                self.spool.max_bytes, entry.frame, self.stats.dropped))

        try:
            self.spool.put(frame_id, self.camera, data, dropped)
        except SpoolTooSmall as exc:
            self._finish(frame_id, "dropped")
            self.log("dropped {}: {}".format(name, exc))
            return
        except OSError as exc:
            self._finish(frame_id, "undelivered")
            self.log("undelivered: {}: cannot spool it ({})".format(name, exc.strerror or exc))
            return
        self._finish(frame_id, "spooled")
        self.spool_log("spooled {}: {}; {} frames, {} bytes in the spool".format(
            name, reason, len(self.spool), self.spool.bytes))

    def _send_spooled(self):
        """One try at the oldest spooled frame; -> True if the server answered (took or refused it)."""
        entry = self.spool.oldest()
        try:  # under the camera name it was captured with, which the frame id belongs to
            self._decode(self.spool.read(entry), entry.camera, entry.frame)
        except Refused as exc:
            self.spool.remove(entry)
            self.stats.move("spooled", "refused")
            self.log("refused: spooled frame {}: {}".format(entry.frame, exc))
        except Unavailable as exc:
            self.spool_log("{}; {} frames wait in the spool".format(exc, len(self.spool)))
            return False
        else:
            self.spool.remove(entry)
            self.stats.move("spooled", "spool_sent")
        return True


class _Aborted(Exception):
    """The run was aborted (an error in another stage): this stage ends without finishing its work."""
