"""Overlapped stages for batches: each stage runs in its own threads, joined by bounded queues.

Reading and decoding images, the transforms, entropy coding and writing then run at the same time
(the runtimes, the rANS core, zlib and Pillow's codecs release the GIL), while at most `depth` items
wait between two stages, so memory stays bounded. A stage may run in several threads (`workers`), each on
its own item: on a CPU, single-threaded transforms of several frames side by side share the cores with the
other stages better than one transform using every core, whose threads wait for each other at every
operator while another stage holds a core. Items come out in input order; an item whose stage
raised a user-facing error (RoiTrtError) skips the later stages and comes out with that error, and the
rest go on. Any other exception is a bug: it stops the pipeline and is raised in the caller.
"""

import queue
import threading
import time

from .errors import RoiTrtError

_END = object()
_POLL = 0.1  # seconds between looks at `stop` while waiting


class Failed(object):
    """The error an item met, carried through the remaining stages."""

    def __init__(self, error):
        self.error = error


class _InOrder(object):
    """Lets the threads of one stage pass their items on in input order: item `seq` waits for its turn."""

    def __init__(self, threads):
        self.next, self.running = 0, threads
        self.changed = threading.Condition()

    def wait_turn(self, seq, stop):
        with self.changed:
            while self.next != seq and not stop.is_set():
                self.changed.wait(_POLL)

    def passed(self):
        with self.changed:
            self.next += 1
            self.changed.notify_all()

    def last_to_end(self):
        """A thread of the stage ends: True for the last, which passes the end on."""
        with self.changed:
            self.running -= 1
            return self.running == 0


def run_stages(items, stages, depth=2, workers=None):
    """Yield (item, result) in order, result being the last stage's return value or a Failed.

    `stages` are functions value -> value; the first gets the item itself. `workers` gives the threads of
    each stage (default one each); a stage run by several must be safe to call from several threads.
    """
    workers = list(workers or [1] * len(stages))
    if len(workers) != len(stages) or min(workers, default=1) < 1:
        raise ValueError("need at least one thread for each of the {} stages, got {}".format(len(stages), workers))
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]
    crashes = []

    def put(q, entry):
        while not stop.is_set():
            try:
                q.put(entry, timeout=_POLL)
                return
            except queue.Full:
                continue

    def feed():
        for seq, item in enumerate(items):
            if stop.is_set():
                return
            put(queues[0], (seq, item, item))
        put(queues[0], _END)

    def work(stage, inbox, outbox, order):
        while not stop.is_set():
            try:
                entry = inbox.get(timeout=_POLL)
            except queue.Empty:
                continue
            if entry is _END:
                inbox.put(_END)  # for this stage's other threads (the inbox has room: nothing follows the end)
                if order.last_to_end():
                    put(outbox, _END)
                return
            seq, item, value = entry
            if not isinstance(value, Failed):
                try:
                    value = stage(value)
                except RoiTrtError as exc:
                    value = Failed(exc)
                except BaseException as exc:  # a bug: stop everything, re-raise in the caller
                    crashes.append(exc)
                    stop.set()
                    return
            order.wait_turn(seq, stop)
            put(outbox, (seq, item, value))
            order.passed()

    threads = [threading.Thread(target=feed)]
    for k, (stage, count) in enumerate(zip(stages, workers)):
        order = _InOrder(count)
        threads += [threading.Thread(target=work, args=(stage, queues[k], queues[k + 1], order)) for _ in range(count)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        while True:
            try:
                entry = queues[-1].get(timeout=_POLL)
            except queue.Empty:
                if crashes:
                    raise crashes[0]
                continue
            if entry is _END:
                return
            yield entry[1:]
    finally:
        stop.set()
        deadline = time.monotonic() + 5
        for thread in threads:  # they notice `stop` within _POLL unless busy in a stage (daemons: never waited on forever)
            thread.join(timeout=max(0, deadline - time.monotonic()))
