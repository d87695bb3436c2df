"""One home per fact: each fact below is written in one module of roi_trt/ or benchmarks/ and imported
everywhere else, so a restatement (a second copy that could drift) fails here."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (what, pattern, its one home)
FACTS = [
    ("the two parts (spec.PARTS)", r"""\(\s*["']encoder["'],\s*["']decoder["']\s*\)""", "roi_trt/spec.py"),
    ("the downsampling factor", r"2\s*\*\*\s*\(\s*M\s*\+\s*2\s*\)", "roi_trt/spec.py"),
    ("the paper's rate weight", r"(?<![\d.])0\.04(?!\d)", "roi_trt/spec.py"),
    ("the paper's head-box weight", r"hbox\s*=\s*0\.6", "roi_trt/spec.py"),
    ("the re-identification threshold", r"(?i)(threshold|reid)[^\n]{0,60}(?<![\d.])0\.6(?!\d)", "roi_trt/bench/privacy.py"),
    ("the GDN1 op name", r"""(?<![\w"'])["']GDN1["'](?!\w)""", "roi_trt/spec.py"),
    ("the export format", r"""["']roi-trt-export["']""", "roi_trt/artifacts.py"),
    ("the engine sidecar format", r"""["']roi-trt-engine["']""", "roi_trt/artifacts.py"),
    ("the repository marker", r"\.roi-trt-repository", "roi_trt/artifacts.py"),
    ("the engine file name", r"""["']\.engine["']|\.engine\.json""", "roi_trt/artifacts.py"),
    ("the symbols an export or an engine must agree on", r"0\.9999", "roi_trt/spec.py"),
    ("a 1080p frame padded for the transforms", r"1088,\s*1920", "roi_trt/build/targets.py"),
    ("how a version string is read", r"""split\(["']\+["']\)""", "roi_trt/optional.py"),
]


def sources():
    for pattern in ("roi_trt/**/*.py", "benchmarks/**/*.py"):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            yield os.path.relpath(path, ROOT)


@pytest.mark.parametrize("what, pattern, home", FACTS, ids=[f[0] for f in FACTS])
def test_each_fact_has_one_home(what, pattern, home):
    found = []
    for path in sources():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            if re.search(pattern, f.read()):
                found.append(path)
    assert found == [home], "{} is written in {} (its home: {})".format(what, ", ".join(found) or "no file", home)
