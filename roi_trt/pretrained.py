"""The paper's released weights by name (`paper:128-2`): fetched once from the authors' server into the
cache, checked against the SHA-256 list they publish beside the files, never used unchecked.

Torch-free and Python 3.6-compatible, with the standard library doing HTTP (TLS verification on), so a
camera can fetch a checkpoint as well as a workstation. A file reaches the cache only verified: it is
streamed to `<name>.pt.part` beside its place (an interrupted download resumes there with an HTTP Range
request, or starts over where the server ignores it), checked, then renamed into place; a lock file
serializes pulls of one file, so concurrent pulls download it once. `$ROI_TRT_PAPER_URL` points at a
mirror (http://, https:// or file://) holding the same files and list.
"""

import os
import re
import shutil
import sys

from . import __version__
from .artifacts import directory_lock, file_sha256
from .errors import ModelError
from .fileio import atomic_output, write_bytes_atomic
from .store import cache_dir

PREFIX = "paper:"
DEFAULT_URL = "https://robotik.informatik.uni-wuerzburg.de/telematics/exchange/anon-compression"
URL_ENV = "ROI_TRT_PAPER_URL"
SHA256_LIST = "sha256sums.txt"
# What the authors publish: the paper's configurations (N-M), then two of them again in the legacy
# (non-zip) serialization that the Jetson Nano's old PyTorch reads.
RELEASES = ("256-2", "256-1", "128-2", "256-2-nanocompat", "128-2-nanocompat")
TIMEOUT_S = 60
_CHUNK = 1 << 18
_MAX_LIST_BYTES = 1 << 16
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")  # `sha256sum` output: text or binary mode


def base_url():
    url = (os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    if not url.startswith(("https://", "http://", "file://")):
        raise ModelError("${}={}: expected an https://, http:// or file:// URL".format(URL_ENV, url))
    return url


def release_name(model):
    """'paper:128-2' or '128-2' -> '128-2', or ModelError naming what the authors publish."""
    name = model[len(PREFIX):] if model.startswith(PREFIX) else model
    if name not in RELEASES:
        raise ModelError("{}: not a released model (the paper's: {})".format(
            model, ", ".join(PREFIX + r for r in RELEASES)))
    return name


def configuration(name):
    """-> (N, M, serialization) of a released model, from its name."""
    n, m = name.split("-")[:2]
    return int(n), int(m), "legacy" if name.endswith("-nanocompat") else "zip"


def release_dir():
    return os.path.join(cache_dir(), "paper")


def cached_path(name):
    return os.path.join(release_dir(), name + ".pt")


def parse_sha256_list(text, source):
    """`sha256sum` output -> {file name: hex digest}; anything else (an HTML error page) is refused."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SHA256_LINE.match(line.rstrip("\r"))
        if not m:
            raise ModelError("{}: not a sha256sum list (line {}: {!r})".format(source, number, line[:60]))
        sums[m.group(2)] = m.group(1).lower()
    if not sums:
        raise ModelError("{}: empty SHA-256 list".format(source))
    return sums


def cached_sha256_list():
    """The list this cache checks against ({} when none has been fetched or given yet)."""
    path = os.path.join(release_dir(), SHA256_LIST)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_sha256_list(f.read(), path)


def _remember(sums, given=None):
    """Merge `sums` into the cached list and return them: the authors' server's entries win (a new release);
    a list the user `given` may add entries but never contradict one the cache holds (a file of another
    model would pass its own list), which is refused naming both digests."""
    path = os.path.join(release_dir(), SHA256_LIST)
    with directory_lock(path):  # pulls of other files may be merging theirs
        merged = cached_sha256_list()
        contradicted = sorted(n for n in sums if given and n in merged and merged[n] != sums[n])
        if contradicted:
            name = contradicted[0]
            raise ModelError("{} lists {} as {}, the cached SHA-256 list {} as {}: refusing a list that contradicts "
                             "the authors' (remove {} to trust yours)".format(
                                 given, name, sums[name][:16] + "...", path, merged[name][:16] + "...", path))
        merged.update(sums)
        text = "".join("{}  {}\n".format(digest, name) for name, digest in sorted(merged.items()))
        write_bytes_atomic(path, text.encode("utf-8"))
    return sums


def _read_list_file(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_sha256_list(f.read(_MAX_LIST_BYTES), path)


def _fetch_list(offline_advice):
    url = "{}/{}".format(base_url(), SHA256_LIST)
    with _get(url, 0, offline_advice) as response:
        data = response.read(_MAX_LIST_BYTES + 1)
    if len(data) > _MAX_LIST_BYTES:
        raise ModelError("{}: larger than {} bytes, not a SHA-256 list".format(url, _MAX_LIST_BYTES))
    return parse_sha256_list(data.decode("utf-8", "replace"), url)


def _get(url, offset, offline_advice):
    """urlopen(url) from byte `offset` on, with one-line errors; the advice says what to do offline."""
    import http.client
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "roi-trt/" + __version__}
    if offset:
        headers["Range"] = "bytes={}-".format(offset)
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None  # nothing past `offset`: the part may be whole already
        raise ModelError("{}: HTTP {} {}".format(url, exc.code, exc.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError (refused, no DNS, TLS), timeouts
        reason = getattr(exc, "reason", None) or exc
        raise ModelError("cannot download {} ({}): {}".format(url, reason, offline_advice)) from None


def _advice(name, need_list):
    """What to do without a connection to the base URL: fetch the files elsewhere and import them."""
    url, command = base_url(), "roi-trt models pull {}{} --from {}.pt".format(PREFIX, name, name)
    if need_list:
        return "fetch {}/{}.pt and {}/{} on a machine that can, then `{} --sha256-list {}`".format(
            url, name, url, SHA256_LIST, command, SHA256_LIST)
    return "fetch {}/{}.pt on a machine that can, then `{}`".format(url, name, command)


def pull(model, from_file=None, sha256_list=None, progress=None):
    """The cached, verified checkpoint of a released model (path), fetched first when needed.

    `from_file`: import this file (fetched elsewhere) instead of downloading; `sha256_list`: check
    against this `sha256sums.txt` (it joins the cached list) instead of the base URL's. Without either,
    the list comes from the base URL (or, for an import, the cache). `progress`: a bar on stderr
    [default: when stderr is a terminal].
    """
    name = release_name(model)
    target = cached_path(name)
    if os.path.isfile(target):
        return target
    with directory_lock(target):
        if not os.path.isfile(target):  # another pull may have finished meanwhile
            expected = _expected_sha256(name, sha256_list, importing=from_file is not None)
            if from_file:
                _import(from_file, target, expected)
            else:
                _download(name, target, expected, sys.stderr.isatty() if progress is None else progress)
    return target


def _expected_sha256(name, sha256_list, importing):
    """-> (hex digest, where it was listed): from the given list, else (for an import) the cached one,
    else the base URL's (which joins the cache)."""
    filename, cached = name + ".pt", cached_sha256_list()
    if sha256_list:
        sums, where = _remember(_read_list_file(sha256_list), given=sha256_list), sha256_list
    elif importing and filename in cached:
        sums, where = cached, os.path.join(release_dir(), SHA256_LIST)
    else:
        where = "{}/{}".format(base_url(), SHA256_LIST)
        advice = ("give the authors' list with --sha256-list (download it on a machine that can)" if importing
                  else _advice(name, need_list=filename not in cached))
        sums = _remember(_fetch_list(advice))
    if filename not in sums:
        raise ModelError("{}: no entry for {}".format(where, filename))
    return sums[filename], where


def _check(path, expected, source):
    """Raise (removing `path`, a download of ours) unless `path` has the listed SHA-256."""
    digest, where = expected
    actual = file_sha256(path)
    if actual != digest:
        os.unlink(path)
        raise ModelError("{}: SHA-256 {}, but {} lists {}: not taken into the cache".format(source, actual, where, digest))


def _import(from_file, target, expected):
    """Copy a file fetched elsewhere into the cache once the copy matches the list (the original stays)."""
    with atomic_output(target, replace=False) as tmp:
        shutil.copyfile(from_file, tmp)
        _check(tmp, expected, from_file)


def _download(name, target, expected, progress):
    """Stream the release to `<target>.part` (resuming what is there), check it, rename it into place."""
    url = "{}/{}.pt".format(base_url(), name)
    part = target + ".part"
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    response = _get(url, offset, _advice(name, need_list=False))
    if response is not None:
        with response:
            start, total = _span(response, offset, url, part)
            with open(part, "ab" if start else "wb") as out:
                _stream(response, out, start, total, url, part, progress)
    _check(part, expected, url)
    os.replace(part, target)


def _span(response, offset, url, part):
    """-> (where the body starts in the file, the file's size or None) from a 200 or 206 response; a 206
    that does not start at `offset` drops the part."""
    if getattr(response, "status", 200) == 206:
        m = re.match(r"bytes (\d+)-\d+/(\d+|\*)$", response.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            if os.path.isfile(part):
                os.unlink(part)
            raise ModelError("{}: the server answered the resume request with Content-Range {!r}; run the command "
                             "again to start over".format(url, response.headers.get("Content-Range")))
        return offset, None if m.group(2) == "*" else int(m.group(2))
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None  # whole file: start over


def _stream(response, out, start, total, url, part, progress):
    """Copy the body to `out` in bounded chunks; an early end keeps the part for the next run to resume."""
    import http.client

    from tqdm import tqdm

    done = start
    with tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
              desc=os.path.basename(url), disable=not progress, file=sys.stderr) as bar:
        try:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                done += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, a chunked body cut short
            raise _interrupted(url, done, total, part, exc) from None
    if total is not None and done != total:
        raise _interrupted(url, done, total, part, "the connection closed early")


def _interrupted(url, done, total, part, reason):
    return ModelError("{}: download interrupted after {} of {} bytes ({}); kept {}: run the command again to "
                      "resume".format(url, done, total if total is not None else "?", reason, part))


def releases():
    """One row per released model: name, N, M, serialization, cached path, size, state (a word or two).

    A cached file is hashed again and compared with the cached list, so `verified` means it matches now.
    """
    sums = cached_sha256_list()
    rows = []
    for name in RELEASES:
        N, M, serialization = configuration(name)
        path = cached_path(name)
        cached = os.path.isfile(path)
        if not cached:
            state = "not cached"
        elif name + ".pt" not in sums:
            state = "not in the cached SHA-256 list"
        else:
            state = "verified" if file_sha256(path) == sums[name + ".pt"] else "differs from the SHA-256 list"
        rows.append({"name": PREFIX + name, "N": N, "M": M, "serialization": serialization,
                     "path": path if cached else None, "size": os.path.getsize(path) if cached else None,
                     "state": state})
    return rows
