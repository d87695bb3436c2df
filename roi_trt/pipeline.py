"""Overlapped stages for batches: each stage runs in its own thread, joined by bounded queues.

Reading and decoding images, the transforms, entropy coding and writing then run at the same time
(the runtimes, the rANS core, zlib and Pillow's codecs release the GIL), while at most `depth` items
wait between two stages, so memory stays bounded. Items come out in input order; an item whose stage
raised a user-facing error (RoiTrtError) skips the later stages and comes out with that error, and the
rest go on. Any other exception is a bug: it stops the pipeline and is raised in the caller.
"""

import queue
import threading

from .errors import RoiTrtError

_END = object()


class Failed(object):
    """The error an item met, carried through the remaining stages."""

    def __init__(self, error):
        self.error = error


def run_stages(items, stages, depth=2):
    """Yield (item, result) in order, result being the last stage's return value or a Failed.

    `stages` are functions value -> value; the first gets the item itself.
    """
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]
    crashes = []

    def put(q, entry):
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def feed():
        for item in items:
            if stop.is_set():
                return
            put(queues[0], (item, item))
        put(queues[0], _END)

    def work(stage, inbox, outbox):
        while not stop.is_set():
            try:
                entry = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if entry is _END:
                put(outbox, _END)
                return
            item, value = entry
            if not isinstance(value, Failed):
                try:
                    value = stage(value)
                except RoiTrtError as exc:
                    value = Failed(exc)
                except BaseException as exc:  # a bug: stop everything, re-raise in the caller
                    crashes.append(exc)
                    stop.set()
                    return
            put(outbox, (item, value))

    threads = [threading.Thread(target=feed)] + [
        threading.Thread(target=work, args=(stage, queues[k], queues[k + 1])) for k, stage in enumerate(stages)
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        while True:
            try:
                entry = queues[-1].get(timeout=0.1)
            except queue.Empty:
                if crashes:
                    raise crashes[0]
                continue
            if entry is _END:
                return
            yield entry
    finally:
        stop.set()
        for thread in threads:  # they notice `stop` within 0.1 s unless busy in a stage (daemons: never waited on forever)
            thread.join(timeout=5)
