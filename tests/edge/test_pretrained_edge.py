"""The paper's released models by name: download, resume, verify and import against a local mirror on
127.0.0.1 (never the internet). The files are opaque bytes here; tests/test_pretrained.py serves real
checkpoints and exports them."""

import hashlib
import os
import socket
import threading

import pytest
from click.testing import CliRunner
from PIL import Image

from paper_mirror import Mirror, sha256sums
from roi_trt import pretrained
from roi_trt.cli import main
from roi_trt.errors import ModelError
from roi_trt.store import resolve

SIZE = 3 * pretrained._CHUNK + 12345  # several reads, not a whole number of them


def payload(seed):
    return b"".join(hashlib.sha256("{}-{}".format(seed, i).encode()).digest() for i in range(SIZE // 32 + 1))[:SIZE]


FILES = {"128-2.pt": payload(1), "256-1.pt": payload(2)}


@pytest.fixture()
def mirror(monkeypatch):
    with Mirror(FILES) as server:
        monkeypatch.setenv(pretrained.URL_ENV, server.url)
        yield server


def cache_listing():
    directory = pretrained.release_dir()
    return sorted(name for name in os.listdir(directory) if not name.endswith(".lock")) if os.path.isdir(directory) else []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pull_downloads_verifies_and_caches_once(mirror):
    path = pretrained.pull("paper:128-2", progress=False)
    assert path == os.path.join(os.environ["ROI_TRT_CACHE"], "paper", "128-2.pt")
    assert open(path, "rb").read() == FILES["128-2.pt"]
    assert cache_listing() == ["128-2.pt", "sha256sums.txt"]  # no .part left
    assert pretrained.cached_sha256_list() == pretrained.parse_sha256_list(sha256sums(FILES), "mirror")
    assert mirror.downloads("128-2.pt") == [None]
    model = resolve("paper:128-2")  # what every command's -m gets: the cached file, nothing fetched again
    assert (model.kind, model.label, model.checkpoint) == ("checkpoint", "paper:128-2", path)
    assert pretrained.pull("128-2") == path and mirror.downloads("128-2.pt") == [None]


def test_wrong_hash_is_not_kept(mirror):
    mirror.files["sha256sums.txt"] = sha256sums({"128-2.pt": b"other bytes"}).encode()
    with pytest.raises(ModelError) as err:
        pretrained.pull("paper:128-2", progress=False)
    expected, actual = hashlib.sha256(b"other bytes").hexdigest(), hashlib.sha256(FILES["128-2.pt"]).hexdigest()
    assert "lists {}".format(expected) in str(err.value) and "SHA-256 {}".format(actual) in str(err.value)
    assert "not taken into the cache" in str(err.value) and cache_listing() == ["sha256sums.txt"]


def test_truncated_transfer_keeps_the_part_and_resumes(mirror):
    mirror.cut_after = SIZE // 2
    with pytest.raises(ModelError, match=r"interrupted after {} of {} bytes.*run the command again to resume".format(
            SIZE // 2, SIZE)):
        pretrained.pull("paper:128-2", progress=False)
    assert cache_listing() == ["128-2.pt.part", "sha256sums.txt"]
    mirror.cut_after = None
    path = pretrained.pull("paper:128-2", progress=False)
    assert mirror.downloads("128-2.pt") == [None, "bytes={}-".format(SIZE // 2)]
    assert open(path, "rb").read() == FILES["128-2.pt"] and cache_listing() == ["128-2.pt", "sha256sums.txt"]


def test_server_gone_mid_download_then_back(monkeypatch):
    port = free_port()
    first = Mirror(FILES, port=port)
    monkeypatch.setenv(pretrained.URL_ENV, first.url)
    first.cut_after, first.gone_after_cut = SIZE // 3, True
    with pytest.raises(ModelError, match="interrupted after {} of".format(SIZE // 3)):
        pretrained.pull("paper:128-2", progress=False)
    with pytest.raises(ModelError) as err:  # nothing listens now: what to do offline, in one line
        pretrained.pull("paper:128-2", progress=False)
    message = str(err.value)
    assert "\n" not in message and "Connection refused" in message
    assert "{}/128-2.pt".format(first.url) in message and "roi-trt models pull paper:128-2 --from 128-2.pt" in message
    assert "--sha256-list" not in message  # the list came with the first attempt
    with Mirror(FILES, port=port) as again:
        path = pretrained.pull("paper:128-2", progress=False)
        assert again.downloads("128-2.pt") == ["bytes={}-".format(SIZE // 3)]
    assert open(path, "rb").read() == FILES["128-2.pt"]


def test_offline_says_what_to_fetch_and_how_to_import_it(monkeypatch, tmp_path):
    monkeypatch.setenv(pretrained.URL_ENV, "http://127.0.0.1:{}/mirror".format(free_port()))
    image = str(tmp_path / "photo.png")
    Image.new("RGB", (32, 32)).save(image)
    result = CliRunner().invoke(main, ["encode", image, "-m", "paper:256-1"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    base = os.environ[pretrained.URL_ENV]
    assert result.output.startswith("Error: cannot download {}/sha256sums.txt".format(base))
    assert "fetch {0}/256-1.pt and {0}/sha256sums.txt".format(base) in result.output
    assert "`roi-trt models pull paper:256-1 --from 256-1.pt --sha256-list sha256sums.txt`" in result.output
    assert cache_listing() == []


def test_a_corrupt_part_is_dropped_and_the_next_pull_starts_over(mirror):
    part = pretrained.cached_path("128-2") + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(b"\0" * 1000)  # not the start of the file: the resumed whole fails the check
    with pytest.raises(ModelError, match="not taken into the cache"):
        pretrained.pull("paper:128-2", progress=False)
    assert not os.path.exists(part)
    assert open(pretrained.pull("paper:128-2", progress=False), "rb").read() == FILES["128-2.pt"]
    assert mirror.downloads("128-2.pt") == ["bytes=1000-", None]


def test_a_server_ignoring_range_restarts_cleanly(mirror):
    part = pretrained.cached_path("128-2") + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(b"\0" * 1000)
    mirror.ignore_range = True
    assert open(pretrained.pull("paper:128-2", progress=False), "rb").read() == FILES["128-2.pt"]
    assert mirror.downloads("128-2.pt") == ["bytes=1000-"]


def test_a_whole_part_is_published_without_a_body(mirror):
    part = pretrained.cached_path("128-2") + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(FILES["128-2.pt"])  # a run that ended between the last byte and the rename
    assert open(pretrained.pull("paper:128-2", progress=False), "rb").read() == FILES["128-2.pt"]
    assert mirror.downloads("128-2.pt") == ["bytes={}-".format(SIZE)]  # answered 416


def test_concurrent_pulls_download_once(mirror):
    mirror.hold = threading.Event()
    paths, errors = [], []

    def pull():
        try:
            paths.append(pretrained.pull("paper:128-2", progress=False))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(3)]
    threads[0].start()
    for _ in range(1000):  # until the first one is downloading
        if mirror.downloads("128-2.pt"):
            break
        threading.Event().wait(0.01)
    for thread in threads[1:]:
        thread.start()
    threading.Event().wait(0.5)  # without the lock, the others would ask for the file now
    mirror.hold.set()
    for thread in threads:
        thread.join()
    assert not errors and len(paths) == 3 and len(set(paths)) == 1
    assert mirror.downloads("128-2.pt") == [None] and open(paths[0], "rb").read() == FILES["128-2.pt"]


@pytest.mark.parametrize("served, message", [
    ({"sha256sums.txt": b"<html><body>Not here</body></html>"}, "not a sha256sum list"),
    ({"sha256sums.txt": sha256sums({"256-1.pt": FILES["256-1.pt"]}).encode()}, "no entry for 128-2.pt"),
    ({"128-2.pt": None}, "HTTP 404"),
], ids=["html-list", "not-listed", "missing-file"])
def test_server_faults_are_one_line_errors(mirror, served, message):
    for name, data in served.items():
        if data is None:
            del mirror.files[name]
        else:
            mirror.files[name] = data
    result = CliRunner().invoke(main, ["models", "pull", "paper:128-2"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not os.path.exists(pretrained.cached_path("128-2"))


def test_import_from_a_file_is_checked(mirror, tmp_path):
    good, bad = str(tmp_path / "128-2.pt"), str(tmp_path / "bad.pt")
    with open(good, "wb") as f:
        f.write(FILES["128-2.pt"])
    with open(bad, "wb") as f:
        f.write(FILES["256-1.pt"])
    result = CliRunner().invoke(main, ["models", "pull", "paper:128-2", "--from", bad])
    assert result.exit_code == 1 and "not taken into the cache" in result.output and "lists" in result.output, result.output
    assert not os.path.exists(pretrained.cached_path("128-2")) and os.path.getsize(bad) == SIZE  # theirs stays
    result = CliRunner().invoke(main, ["models", "pull", "128-2", "--from", good])
    assert result.exit_code == 0, result.output
    assert open(pretrained.cached_path("128-2"), "rb").read() == FILES["128-2.pt"] and os.path.getsize(good) == SIZE
    assert mirror.downloads("128-2.pt") == []  # imported, not downloaded


def test_a_list_that_contradicts_the_cached_one_is_refused(mirror, tmp_path):
    """Someone's own sha256sums.txt must not turn another file into "the paper's verified weights"."""
    pretrained.pull("paper:128-2", progress=False)  # the authors' list is cached now
    other = str(tmp_path / "256-1.pt")
    with open(other, "wb") as f:
        f.write(payload(99))
    forged = tmp_path / "sums.txt"
    forged.write_text(sha256sums({"256-1.pt": payload(99)}))
    result = CliRunner().invoke(main, ["models", "pull", "paper:256-1", "--from", other, "--sha256-list", str(forged)])
    assert result.exit_code == 1 and "contradicts the authors'" in result.output, result.output
    assert not os.path.exists(pretrained.cached_path("256-1"))
    assert pretrained.cached_sha256_list()["256-1.pt"] == hashlib.sha256(FILES["256-1.pt"]).hexdigest()
    cached = CliRunner().invoke(main, ["models", "pull", "paper:128-2", "--from", other])
    assert cached.exit_code == 0 and "is cached and verified already: --from" in cached.output


def test_import_offline_needs_a_list(monkeypatch, tmp_path):
    monkeypatch.setenv(pretrained.URL_ENV, "http://127.0.0.1:{}".format(free_port()))
    given = str(tmp_path / "256-1.pt")
    with open(given, "wb") as f:
        f.write(FILES["256-1.pt"])
    result = CliRunner().invoke(main, ["models", "pull", "paper:256-1", "--from", given])
    assert result.exit_code == 1 and "--sha256-list" in result.output and result.output.count("\n") == 1, result.output
    sums = tmp_path / "sha256sums.txt"
    sums.write_text(sha256sums(FILES))
    result = CliRunner().invoke(main, ["models", "pull", "paper:256-1", "--from", given, "--sha256-list", str(sums)])
    assert result.exit_code == 0, result.output
    assert open(pretrained.cached_path("256-1"), "rb").read() == FILES["256-1.pt"]
    assert "256-1.pt" in pretrained.cached_sha256_list()  # later imports and the listing check against it


def test_models_lists_what_is_cached_and_verified(mirror):
    result = CliRunner().invoke(main, ["models", "pull", "paper:128-2", "paper:256-1", "--no-progress"])
    assert result.exit_code == 0, result.output
    with open(pretrained.cached_path("256-1"), "r+b") as f:
        f.write(b"x")  # damaged after it was verified
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[2:]}
    assert sorted(rows) == sorted(pretrained.PREFIX + name for name in pretrained.RELEASES)
    assert rows["paper:128-2"].split()[1:4] == ["128", "2", "zip"] and rows["paper:128-2"].endswith("  verified")
    assert rows["paper:256-1"].endswith("differs from the SHA-256 list")
    assert rows["paper:128-2-nanocompat"].split()[3] == "legacy" and rows["paper:128-2-nanocompat"].endswith("not cached")
    assert mirror.url in result.output.splitlines()[0]


def test_batch_pull_goes_on_after_a_failure(mirror):
    del mirror.files["256-1.pt"]
    result = CliRunner().invoke(main, ["models", "pull", "paper:256-1", "paper:128-2"])
    assert result.exit_code == 1 and "Error: {}/256-1.pt: HTTP 404".format(mirror.url) in result.output, result.output
    assert os.path.isfile(pretrained.cached_path("128-2")) and not os.path.exists(pretrained.cached_path("256-1"))


def test_a_file_url_mirror(monkeypatch, tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "sha256sums.txt").write_text(sha256sums(FILES))
    monkeypatch.setenv(pretrained.URL_ENV, "file://" + str(tmp_path))
    assert open(pretrained.pull("paper:256-1", progress=False), "rb").read() == FILES["256-1.pt"]


def test_progress_only_when_asked_or_on_a_terminal(mirror, capsys):
    pretrained.pull("paper:128-2", progress=True)
    assert "128-2.pt" in capsys.readouterr().err
    pretrained.pull("paper:256-1")  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_names_and_urls_are_checked(monkeypatch):
    with pytest.raises(ModelError, match="paper:999-9: not a released model.*paper:128-2-nanocompat"):
        resolve("paper:999-9")
    monkeypatch.setenv(pretrained.URL_ENV, "ftp://mirror.example/anon")
    with pytest.raises(ModelError, match="expected an https://, http:// or file:// URL"):
        pretrained.pull("paper:128-2")
    monkeypatch.delenv(pretrained.URL_ENV)
    assert pretrained.base_url() == pretrained.DEFAULT_URL.rstrip("/") and pretrained.DEFAULT_URL.startswith("https://")
    assert [pretrained.configuration(name) for name in pretrained.RELEASES] == [
        (256, 2, "zip"), (256, 1, "zip"), (128, 2, "zip"), (256, 2, "legacy"), (128, 2, "legacy")]
