"""pycov's statement model equals coverage.py's parser on real code: the
standard library of each interpreter, the fixtures and the sample projects."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import FIXTURES, SAMPLES

TOOL = Path(__file__).resolve().parent / "tools" / "analysis_corpus.py"
# Every third stdlib file keeps the run short; set PYCOV_CORPUS_STEP=1 for all.
STEP = os.environ.get("PYCOV_CORPUS_STEP", "3")


def stdlib_of(python) -> str:
    result = python.run(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"], ".")
    return result.stdout.strip()


def test_stdlib_sample(python, tmp_path):
    result = python.run([TOOL, "--step", STEP, "--max-bytes", "300000", stdlib_of(python)], tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " 0 differences" in result.stdout


def test_fixtures_and_samples(python, tmp_path):
    result = python.run([TOOL, FIXTURES, SAMPLES], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
