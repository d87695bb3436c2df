"""The documentation: its results sections equal what the committed CSVs give, and its links lead somewhere."""

import glob
import importlib.util
import os
import re
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = [os.path.join(ROOT, p) for p in ("README.md", "benchmarks/README.md", "jetson/README.md", "engines/README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _load_tables():
    spec = importlib.util.spec_from_file_location("tables", os.path.join(ROOT, "benchmarks", "tables.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _load_tables()


def test_every_results_section_equals_what_the_committed_results_give():
    assert tables.run(tables.Results(), write=False) == []


def test_the_readme_and_docs_hold_generated_results():
    used = set()
    for path in tables.documents():
        used |= {m.group("name") for m in tables.SECTION.finditer(open(path, encoding="utf-8").read())}
    assert {"demo", "latency", "precision-headline"} <= used  # the README's headline tables
    assert used == set(tables.SECTIONS)  # every generator feeds a document


def _copy_tree(tmp_path):
    """README, benchmarks/README and docs/ beside a copy of the results, for changing either."""
    for path in tables.documents():
        target = tmp_path / os.path.relpath(path, ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, str(target))
    shutil.copytree(tables.RESULTS, str(tmp_path / "results"))
    return str(tmp_path), tables.Results(str(tmp_path / "results"))


def test_a_section_edited_by_hand_or_a_changed_result_is_found_and_regenerated(tmp_path):
    root, results = _copy_tree(tmp_path)
    readme = os.path.join(root, "README.md")
    text = open(readme, encoding="utf-8").read()
    open(readme, "w", encoding="utf-8").write(text.replace("| (256, 2) | ", "| (256, 2) | 0.5 s ", 1))
    rows = open(results.path("roi_loss.csv")).read().replace("roi-loss-vectorized,14,512,40,40,5,0.", "roi-loss-vectorized,14,512,40,40,5,9.")
    open(results.path("roi_loss.csv"), "w").write(rows)
    assert tables.run(results, False, root) == [
        "README.md: latency", "docs/benchmarks.md: roi-loss", "docs/training.md: roi-loss"]
    assert open(readme, encoding="utf-8").read() != text  # --check changed nothing
    tables.run(tables.Results(results.directory), True, root)
    assert open(readme, encoding="utf-8").read() == text
    assert tables.run(tables.Results(results.directory), False, root) == []
    assert "takes 9" in open(os.path.join(root, "docs", "training.md"), encoding="utf-8").read()


def test_results_written_before_the_provenance_columns_read_not_recorded(tmp_path):
    _, results = _copy_tree(tmp_path)
    with open(results.path("old.csv"), "w") as f:
        f.write("case,seconds,cpu\na,1.0,x86_64\n")
    line = next(l for l in tables.machines(results).splitlines() if "`old.csv`" in l)
    assert line.count(tables.NOT_RECORDED) == 6 and "x86_64" in line
    new = next(l for l in tables.machines(results).splitlines() if "`roi_loss.csv`" in l)
    assert tables.NOT_RECORDED not in new


def test_unknown_or_unbalanced_sections_are_refused(tmp_path):
    results = tables.Results()
    with pytest.raises(tables.SectionError, match="unknown section 'nope'"):
        tables.render("<!-- results:nope -->\n<!-- /results:nope -->\n", results)
    with pytest.raises(tables.SectionError, match="unbalanced"):
        tables.render("<!-- results:latency -->\ntext\n", results)
    quoted = "Sections are marked `<!-- results:NAME -->` in prose.\n"
    assert tables.render(quoted, results) == (quoted, [])


def _anchors(path):
    """GitHub's heading anchors of a Markdown file."""
    anchors, seen = set(), {}
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if not count else "{}-{}".format(slug, count))
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_points_to_an_existing_file_and_heading(document):
    text = open(document, encoding="utf-8").read()
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(document), path)) if path else document
        assert os.path.exists(resolved), "{}: {} does not exist".format(os.path.relpath(document, ROOT), target)
        if anchor and resolved.endswith(".md"):
            assert anchor in _anchors(resolved), "{}: no heading for {}".format(os.path.relpath(document, ROOT), target)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_source_path_a_document_names_exists(document):
    """Paths in code spans that name this repository's sources (outputs and patterns aside) survive moves."""
    text = open(document, encoding="utf-8").read()
    for path in re.findall(r"`((?:roi_trt|tests|benchmarks|engines|jetson|docs)/[^`\s]*)`", text):
        if any(c in path for c in "*<…") or path.startswith("engines/build/"):  # patterns, build outputs
            continue
        assert os.path.exists(os.path.join(ROOT, path)), "{}: {} does not exist".format(os.path.relpath(document, ROOT), path)
