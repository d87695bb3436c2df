"""Batch file handling for `encode`/`decode`: naming, collisions, no-clobber, standard streams, summaries.

The rules (also in docs/files.md):
- Inputs are paths, globs and directories (non-recursive, by suffix), or `-` for standard input (alone).
- Outputs go beside each input unless `-o` says otherwise: encode writes `<stem>.roi`, decode
  `<stem>.decoded.png`, so a decoded image never takes the name of the photo it came from.
- When two inputs would write one output (`a.jpg` and `a.png`), both outputs keep the input's whole
  name (`a.jpg.roi`, `a.png.roi`); if they still collide (one name from two directories into one
  `-o` directory) the batch is refused before any work.
- `-o DIR` (an existing directory, or a new path without a suffix) puts the outputs there; `-o FILE`
  (one input; several inputs are refused) writes that file in the format its suffix names; `-o -`
  writes standard output. Standard input into a directory is named `stdin`.
- An input is never an output, even with `--force`. An existing output is left alone and reported as
  skipped unless `--force`. Outputs appear atomically (see fileio).
"""

import glob
import os
import sys
import time
from collections import Counter, namedtuple

from .errors import RoiTrtError, UsageError
from .fileio import atomic_output, check_output, distinct_files

STDIO = "-"
# skip: why this input will not be processed, or None; data: standard input's bytes, read when planning
Job = namedtuple("Job", "source target skip data")


def expand(patterns, suffixes):
    """Files named by paths, globs and directories (non-recursive), in order, each file once."""
    if STDIO in patterns:
        if len(patterns) > 1:
            raise UsageError("'-' (standard input) must be the only input")
        return [STDIO]
    found = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            names = sorted(os.path.join(pattern, n) for n in os.listdir(pattern)
                           if n.lower().endswith(suffixes) and os.path.isfile(os.path.join(pattern, n)))
        elif glob.has_magic(pattern) and not os.path.lexists(pattern):  # 'img[1].png' that exists is a name
            names = sorted(p for p in glob.glob(pattern) if os.path.isfile(p)) or [pattern]
        else:
            names = [pattern]  # a missing file (or a glob matching none) is reported as that input's failure
        found += names
    return distinct_files(found)


def _names_file(output):
    """`-o` names one file (rather than a directory) when it is not a directory and has a suffix."""
    return output not in (None, STDIO) and not os.path.isdir(output) and bool(os.path.splitext(output)[1])


def plan(sources, output, suffix, force, file_suffixes):
    """-> [Job]: where each input's output goes; refuses collisions before any work (UsageError).

    `suffix` is appended to an input's stem (or whole name, on collision); `file_suffixes` are the
    suffixes an `-o FILE` may have.
    """
    if not sources:
        raise UsageError("no input files")
    if output == STDIO and len(sources) != 1:
        raise UsageError("-o - (standard output) takes exactly one input, got {}".format(len(sources)))
    if sources == [STDIO] and output is None:
        raise UsageError("reading standard input: give -o FILE, -o DIR or -o -")
    if sources == [STDIO] and sys.stdin.isatty():
        raise UsageError("standard input is a terminal: pipe the data in")
    if output == STDIO and sys.stdout.isatty():
        raise UsageError("standard output is a terminal: redirect it, or give -o FILE")
    if output not in (None, STDIO) and os.path.exists(output) and not os.path.isdir(output) \
            and not os.path.splitext(output)[1]:
        raise UsageError("-o {} exists and is not a directory".format(output))
    if _names_file(output):
        if len(sources) > 1:
            raise UsageError("-o {} names one file but {} inputs were given: give a directory".format(output, len(sources)))
        if os.path.splitext(output)[1].lower() not in file_suffixes:
            raise UsageError("-o {}: unknown output suffix (use {})".format(output, ", ".join(file_suffixes)))
        targets = [output]
    elif output == STDIO:
        targets = [STDIO]
    else:
        targets = _directory_targets(sources, output, suffix)
    inputs = set(os.path.realpath(s) for s in sources if s != STDIO)
    jobs = []
    for source, target in zip(sources, targets):
        skip = None
        if target != STDIO and os.path.realpath(target) in inputs:
            skip = "{} is an input: refusing to overwrite it".format(target)
        elif target != STDIO and os.path.isdir(target):
            skip = "{} is a directory".format(target)
        elif target != STDIO and os.path.lexists(target) and not force:
            skip = "{} exists (--force replaces it)".format(target)
        jobs.append(Job(source, target, skip, None))
    checked = set()
    for job in jobs:  # every output directory writable, before any work
        where = os.path.dirname(os.path.abspath(job.target))
        if job.target != STDIO and not job.skip and where not in checked:
            check_output(job.target, replace=True)
            checked.add(where)
    if sources == [STDIO] and not jobs[0].skip:  # read here, in the main thread, where Ctrl-C reaches it
        jobs[0] = jobs[0]._replace(data=sys.stdin.buffer.read())
    return jobs


def _directory_targets(sources, output, suffix):
    def target(source, whole_name):
        base = "stdin" if source == STDIO else os.path.basename(source if whole_name else os.path.splitext(source)[0])
        name = base + suffix
        return os.path.join(output if output is not None else os.path.dirname(source), name)

    def key(path):
        return os.path.normcase(os.path.abspath(path))

    short = [target(s, False) for s in sources]
    counts = Counter(key(t) for t in short)
    targets = [target(s, True) if counts[key(t)] > 1 else t for s, t in zip(sources, short)]
    owner = {}
    for source, t in zip(sources, targets):
        if key(t) in owner:
            raise UsageError("{} and {} would both write {}: process them separately or with -o FILE".format(
                owner[key(t)], source, t))
        owner[key(t)] = source
    return targets


def read_input(job):
    """Bytes of a job's file or of standard input."""
    if job.source == STDIO:
        data = job.data
    else:
        try:
            with open(job.source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise RoiTrtError("{}: {}".format(job.source, exc.strerror)) from None
    if not data:
        raise RoiTrtError("{}: empty input".format(job.source))
    return data


def write_output(target, write, replace):
    """Call write(binary file object) for standard output or an atomically published file."""
    if target == STDIO:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    try:
        with atomic_output(target, replace) as tmp:
            with open(tmp, "wb") as f:
                write(f)
    except OSError as exc:  # full disk, read-only directory, ...: this output fails, the batch goes on
        raise RoiTrtError("{}: cannot write ({})".format(target, exc.strerror or exc)) from None


class Summary(object):
    """What a batch did, counted truthfully: written, failed, skipped, and bits over all pixels."""

    def __init__(self, verb, files):
        self.verb, self.files = verb, files
        self.ok = self.failed = self.skipped = 0
        self.bits = self.pixels = 0
        self.file_bpp = []
        self.start = time.perf_counter()

    def written(self, nbytes, pixels):
        self.ok += 1
        self.bits += 8 * nbytes
        self.pixels += pixels
        self.file_bpp.append(8.0 * nbytes / pixels)

    def as_dict(self):
        elapsed = time.perf_counter() - self.start
        out = {"files": self.files, "ok": self.ok, "failed": self.failed, "skipped": self.skipped,
               "seconds": round(elapsed, 3), "files_per_s": round(self.ok / elapsed, 3) if elapsed > 0 else None}
        if self.pixels:
            out.update(bits=self.bits, pixels=self.pixels, bpp=round(self.bits / float(self.pixels), 5),
                       mean_file_bpp=round(sum(self.file_bpp) / len(self.file_bpp), 5))
        return out

    def line(self):
        s = self.as_dict()
        text = "{} {}/{} files".format(self.verb, s["ok"], s["files"])
        if s["failed"] or s["skipped"]:
            text += " ({} failed, {} skipped)".format(s["failed"], s["skipped"])
        if self.pixels:
            text += ", {} bpp over all pixels (per-file mean {})".format(s["bpp"], s["mean_file_bpp"])
        return text + ", {} files/s".format(s["files_per_s"])

    @property
    def complete(self):
        return self.ok == self.files


class _Skipped(RoiTrtError):
    pass


def run_batch(jobs, stages, summary, as_json=False, progress=False, workers=None):
    """Run each job through `stages` (pipeline.run_stages: overlapped, bounded, in order, `workers`
    threads per stage); the last stage returns a row. One input's failure is reported and the rest go on.

    A row is a dict for --json with `_line` (the human-readable line), `_pixels` (for bpp) and `_note`
    (said once per kind) popped off; `bytes` counts toward the summary's bits. Messages go to stderr
    when standard output carries data. Returns the summary.
    """
    import json

    from tqdm import tqdm

    from .pipeline import Failed, run_stages

    def start(job):
        if job.skip:
            raise _Skipped(job.skip)
        return stages[0](job)

    out = sys.stderr if any(job.target == STDIO for job in jobs) else sys.stdout
    notes = set()
    with tqdm(total=len(jobs), unit="file", disable=not progress, leave=False, file=sys.stderr) as bar:
        for job, row in run_stages(jobs, [start] + list(stages[1:]), workers=workers):
            bar.update(1)
            if isinstance(row, Failed):
                skipped = isinstance(row.error, _Skipped)
                message = str(row.error)
                if skipped:
                    summary.skipped += 1
                else:
                    summary.failed += 1
                    message = message if message.startswith(job.source) else "{}: {}".format(job.source, message)
                bar.write(("skipped: " if skipped else "error: ") + message, file=sys.stderr)
                if as_json:
                    print(json.dumps({"file": job.source, "skipped" if skipped else "error": str(row.error)}), file=out)
                continue
            line, pixels, note = row.pop("_line"), row.pop("_pixels"), row.pop("_note", None)
            if note and note not in notes:
                notes.add(note)
                bar.write("note: {} ({}; further such images not mentioned)".format(note, job.source), file=sys.stderr)
            summary.written(row["bytes"], pixels)
            if as_json:
                print(json.dumps(row), file=out)
            else:
                bar.write(line, file=out)
    if as_json:
        print(json.dumps({"summary": summary.as_dict()}), file=out)
    else:
        print(summary.line(), file=out)
    return summary


def _shown(target):
    return "stdout" if target == STDIO else target


def stage_workers(codec):
    """Threads for each of the stages below (load, transform, finish): the transform gets one per frame
    the codec's backend runs side by side."""
    return 1, codec.backend.frames, 1


def encode_stages(codec, size=None, replace=False):
    """Stages for run_batch that encode image files to .roi streams (`size`=(h, w) resizes first).

    Between stages images wait as uint8, a quarter of their float size."""
    from .bitstream import check_image_size
    from .imageio import decode_rgb

    def load(job):  # the size in the file's header is refused before its pixels, unless --size resizes them
        rgb, note = decode_rgb(read_input(job), job.source, check_size=None if size else check_image_size)
        return job, rgb, note

    def transform(state):
        job, rgb, note = state
        frame = codec.prepare(rgb, size)
        latent, transform_s = codec.analyze(frame)
        return job, frame._replace(x=None), note, latent, transform_s  # the float image is done with

    def finish(state):
        job, frame, note, latent, transform_s = state
        data, entropy_s = codec.finish_encode(frame, latent)
        write_output(job.target, lambda f: f.write(data), replace)
        pixels = frame.height * frame.width
        bpp = len(data) * 8.0 / pixels
        row = {"file": job.source, "output": job.target, "width": frame.width, "height": frame.height,
               "bytes": len(data), "bpp": round(bpp, 5), "transform_ms": round(transform_s * 1e3, 3),
               "entropy_ms": round(entropy_s * 1e3, 3), "_pixels": pixels, "_note": note}
        row["_line"] = "{} -> {}  {}x{}  {:.4f} bpp  {} B  analysis {:.1f} ms  entropy coding {:.1f} ms".format(
            job.source, _shown(job.target), frame.width, frame.height, bpp, len(data), row["transform_ms"],
            row["entropy_ms"])
        return row

    return load, transform, finish


def decode_stages(codec, default_suffix=".png", replace=False):
    """Stages for run_batch that decode streams to images, in the format of the target's suffix
    (`default_suffix` for standard output)."""
    from .imageio import IMAGE_WRITERS

    def load(job):
        data = read_input(job)
        return (job, len(data)) + codec.parse(data)

    def transform(state):
        job, nbytes, latent, crop, entropy_s = state
        rgb, transform_s = codec.synthesize_rgb8(latent, crop)
        return job, nbytes, entropy_s, rgb, transform_s

    def finish(state):
        job, nbytes, entropy_s, rgb, transform_s = state
        suffix = os.path.splitext(job.target)[1].lower() if job.target != STDIO else default_suffix
        write_output(job.target, lambda f: IMAGE_WRITERS[suffix](rgb, f), replace)
        height, width = rgb.shape[:2]
        row = {"file": job.source, "output": job.target, "width": width, "height": height, "bytes": nbytes,
               "bpp": round(nbytes * 8.0 / (height * width), 5), "entropy_ms": round(entropy_s * 1e3, 3),
               "transform_ms": round(transform_s * 1e3, 3), "_pixels": height * width}
        row["_line"] = "{} -> {}  {}x{}  entropy decoding {:.1f} ms  synthesis {:.1f} ms".format(
            job.source, _shown(job.target), width, height, row["entropy_ms"], row["transform_ms"])
        return row

    return load, transform, finish
