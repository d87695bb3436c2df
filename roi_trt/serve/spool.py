"""What a camera keeps on disk so that no frame is lost or sent twice across faults (torch-free, Python 3.6).

A spool directory belongs to one `roi-trt stream` at a time (it holds `lock` with flock while it runs; the
kernel releases it when the process dies, however it dies) and contains:

- `<frame id, 19 digits>.<camera>.roi`: a frame the server could not take in time, the `.roi` stream exactly
  as it is sent. Written to a temporary name, flushed to disk and renamed (roi_trt.fileio) before the frame
  counts as spooled, and deleted only once the server confirmed it, so a kill at any moment leaves each
  frame either whole in the spool or not there (a leftover temporary is removed at the next start).
- `state.json`, written the same way: a floor for the next run's frame ids and, for a directory source,
  which files were taken and which of them are not finished yet (`CaptureJournal`).

Frame ids (`FrameIds`) are microseconds since the epoch at capture, each above the one before: a restarted
camera does not reuse its ids, and the server's sink file names sort by capture time. With a spool the ids
given out are also recorded there a minute ahead, so the next run starts above them even if the clock went
back meanwhile (a Jetson without network time after a reboot).
"""

import json
import os
import re
import threading
import time
from collections import namedtuple

from ..errors import RoiTrtError
from ..fileio import atomic_output

SpoolEntry = namedtuple("SpoolEntry", "frame camera size path")
_ENTRY = re.compile(r"^(\d{19})(?:\.(.+))?\.roi$")
STATE = "state.json"


class SpoolTooSmall(RoiTrtError):
    """One frame is larger than the whole spool."""


def _write_durable(path, data):
    """Replace `path` with `data` atomically, on disk before this returns (a power cut keeps the old or the
    new content, never a mix)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself
    finally:
        os.close(directory)


def spool_entries(directory):
    """The frames waiting in a spool directory, oldest first (it may be in use: this only reads)."""
    out = []
    for name in os.listdir(directory):
        match = _ENTRY.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            out.append(SpoolEntry(int(match.group(1)), match.group(2), os.path.getsize(path), path))
        except FileNotFoundError:
            continue  # sent and removed meanwhile
    return sorted(out, key=_oldest_first)


def _oldest_first(entry):
    return entry.frame, entry.path


class Spool(object):
    """Frames waiting for the server, oldest (lowest frame id) first, at most `max_bytes` of streams.

    When a new frame does not fit, the oldest spooled frames are dropped to make room: a camera's newest
    frames are the ones an operator needs while an outage lasts, and they join the live stream without a
    second gap when the server is back (refusing new frames instead would keep the start of the outage
    and lose everything after it). The caller is told of every dropped frame, to count and log it.
    Not thread-safe: one thread (the camera's sender) puts, sends and removes.
    """

    def __init__(self, directory, max_bytes):
        import fcntl

        self.directory, self.max_bytes = directory, int(max_bytes)
        try:
            os.makedirs(directory, exist_ok=True)
            self._lock = open(os.path.join(directory, "lock"), "a")
        except OSError as exc:
            raise RoiTrtError("spool {}: {}".format(directory, exc.strerror or exc)) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise RoiTrtError("spool {} is in use by another roi-trt stream".format(directory)) from None
        try:
            self._state_lock = threading.Lock()
            self.state = self._read_state()
            for name in os.listdir(directory):
                if name.startswith(".") and name.endswith(".part"):  # a write cut short by a kill
                    os.unlink(os.path.join(directory, name))
            self._entries = spool_entries(directory)
            self.bytes = sum(e.size for e in self._entries)
        except BaseException:
            self.close()
            raise

    def _read_state(self):
        path = os.path.join(self.directory, STATE)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RoiTrtError("spool {}: unreadable {} ({})".format(self.directory, STATE, exc)) from None

    def save_state(self, **changes):
        """Record `changes` in state.json (on disk before this returns)."""
        with self._state_lock:
            self.state.update(changes)
            _write_durable(os.path.join(self.directory, STATE), json.dumps(self.state, sort_keys=True).encode("utf-8"))

    def close(self):
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return len(self._entries)

    def __contains__(self, frame_id):
        return any(e.frame == frame_id for e in self._entries)

    def oldest(self):
        return self._entries[0] if self._entries else None

    def put(self, frame_id, camera, data, dropped):
        """Keep one frame (on disk before this returns); `dropped(entry)` is told of each spooled frame dropped
        to make room."""
        if len(data) > self.max_bytes:
            raise SpoolTooSmall("frame of {} bytes is larger than the spool ({} bytes)".format(len(data), self.max_bytes))
        while self.bytes + len(data) > self.max_bytes:
            oldest = self._entries[0]
            self.remove(oldest)
            dropped(oldest)
        name = "{:019d}{}.roi".format(frame_id, "." + camera if camera else "")
        path = os.path.join(self.directory, name)
        _write_durable(path, bytes(data))
        self._entries.append(SpoolEntry(frame_id, camera, len(data), path))
        self._entries.sort(key=_oldest_first)
        self.bytes += len(data)

    @staticmethod
    def read(entry):
        with open(entry.path, "rb") as f:
            return f.read()

    def remove(self, entry):
        """Forget a frame (the server confirmed or refused it, or the spool drops it)."""
        os.unlink(entry.path)
        self._entries.remove(entry)
        self.bytes -= entry.size


class FrameIds(object):
    """Frame ids that never repeat for a camera (see the module's docstring); thread-safe."""

    LEASE_US = 60 * 10 ** 6

    def __init__(self, spool=None):
        self.spool, self._lock = spool, threading.Lock()
        self.leased = int(spool.state.get("next_id", 0)) if spool is not None else 0
        self.last = self.leased - 1

    def next(self):
        with self._lock:
            frame_id = max(int(time.time() * 10 ** 6), self.last + 1)
            if self.spool is not None and frame_id >= self.leased:
                self.leased = frame_id + self.LEASE_US
                self.spool.save_state(next_id=self.leased)
            self.last = frame_id
            return frame_id


class CaptureJournal(object):
    """Which files of a directory source were taken and which of those are not finished (neither sent,
    spooled, refused, dropped nor failed), kept in the spool's state.

    A file's frame is recorded as taken, with its frame id, before it is sent; so a camera killed at any moment
    and restarted with the same spool skips what was finished and takes the unfinished files again under
    their first ids. Those may have reached the server just before the kill: its sink takes a frame whose
    stream it already holds as delivered, so none is stored twice. Finishing is recorded with the next
    write (a frame finished but not yet recorded is merely sent once more)."""

    def __init__(self, spool, source):
        self.spool, self._lock = spool, threading.Lock()
        saved = spool.state.get("source") or {}
        self.source = os.path.abspath(source)
        if saved.get("directory") == self.source:
            self.position = saved.get("position")
            self.unfinished = dict((int(k), v) for k, v in saved.get("unfinished", []))
        else:
            self.position, self.unfinished = None, {}
        self.recovered = sorted(self.unfinished.items())  # (frame id, name) to take again, oldest first
        self._dirty = False

    def _save(self):
        self.spool.save_state(source={"directory": self.source, "position": self.position,
                                      "unfinished": sorted(self.unfinished.items())})
        self._dirty = False

    def taken(self, frame_id, name, position):
        with self._lock:
            self.unfinished[frame_id], self.position = name, position
            self._save()

    def passed(self, position):
        """The source moved on without a frame (an unreadable file)."""
        with self._lock:
            self.position, self._dirty = position, True

    def finished(self, frame_id):
        with self._lock:
            if self.unfinished.pop(frame_id, None) is not None:
                self._dirty = True

    def flush(self):
        with self._lock:
            if self._dirty:
                self._save()
