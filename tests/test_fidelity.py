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


def test_long_code_objects(python, tmp_path):
    # Code objects whose lines lie far from their first line are measured
    # through INSTRUCTION events instead of LINE (CPython stores their lines
    # in a way that makes LINE events slow); the answers must not change.
    body = []
    for i in range(150):
        body.append(f"    if x % {i % 7 + 2} == 0:\n        x += {i}\n    else:\n        x -= 1\n")
    function = "def long_function(x):\n" + "".join(body) + "    return x\n"
    top_level = "".join(
        f"VALUE_{i} = {i}\nif VALUE_{i} % 3 == 0:\n    TOTAL = VALUE_{i}\nelse:\n    pass\n" for i in range(100)
    )
    loop = "for i in range(3):\n    if i == 5:\n        never = 1\n    result = [j for j in range(i)]\n"
    source = function + top_level + loop + "print(long_function(10))\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    caught = 1\n"
    (tmp_path / "long.py").write_text(source)
    result = compare("long", python.executable, tmp_path, ".", ["long.py"])
    assert result.differences == []
    assert result.statements > 800
