"""Same answers as coverage.py 7.17.4: for every file, the executed,
missing and excluded lines of `pycov json` equal `coverage json`'s for the
same run (same `--source`, default settings)."""

from __future__ import annotations

import pytest
from compare_with_coverage import compare

from conftest import SAMPLES

RUNS = {
    # name: (project, source, target)
    "awkward-script": ("awkward", ".", ["main.py"]),
    "inventory-pytest": ("inventory", ".", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]),
    "inventory-cli": ("inventory", "inventory", ["main.py", "report", "stock.csv"]),
    "textkit-module": ("textkit", ".", ["-m", "textkit", "sample.txt"]),
    "textkit-pytest": ("textkit", "textkit", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]),
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_same_lines_as_coverage_py(python, project, run):
    name, source, target = RUNS[run]
    where = project(name) if name == "awkward" else project(name, SAMPLES)
    result = compare(run, python.executable, where, source, target)
    assert result.differences == []
    assert result.exit_codes[0] == result.exit_codes[1]
    assert result.files >= 3
