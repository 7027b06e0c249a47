"""`pycov report` and `pycov json` say what coverage.py says for the same
run: the same table byte for byte, the same exit status with --fail-under,
the same JSON numbers."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLES
from pycov_testing import write

PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]


@pytest.fixture
def measured(python, project, tmp_path):
    """The inventory sample's tests, measured by both tools."""
    where = project("inventory", SAMPLES)
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    coverage = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "--source=.", *PYTEST], where)
    assert coverage.returncode == 0, coverage.stdout + coverage.stderr
    pycov = python.pycov(["run", "--source", ".", *PYTEST], where)
    assert pycov.returncode == 0, pycov.stdout + pycov.stderr
    return where, rc


@pytest.mark.parametrize(
    "options",
    [[], ["-m"], ["--skip-covered"], ["--precision=2"], ["-m", "--skip-covered", "--precision=1"],
     ["--omit=tests/*"], ["--include=inventory/*", "-m"]],
    ids=lambda o: " ".join(o) or "default",
)
def test_table_is_coverage_pys(python, measured, options):
    where, rc = measured
    theirs = python.run(["-m", "coverage", "report", f"--rcfile={rc}", *options], where)
    ours = python.pycov(["report", *options], where)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, "")


@pytest.mark.parametrize("threshold", ["100", "50", "93.5", "99.99"])
def test_fail_under_is_coverage_pys(python, measured, threshold):
    where, rc = measured
    theirs = python.run(["-m", "coverage", "report", f"--rcfile={rc}", f"--fail-under={threshold}"], where)
    ours = python.pycov(["report", f"--fail-under={threshold}"], where)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.returncode in (0, 2)


def test_json_is_coverage_pys(python, measured):
    where, rc = measured
    assert python.run(["-m", "coverage", "json", f"--rcfile={rc}", "-o", "theirs.json"], where).returncode == 0
    result = python.pycov(["json", "-o", "ours.json"], where)
    assert (result.returncode, result.stdout) == (0, "Wrote JSON report to ours.json\n")
    theirs = json.loads((where / "theirs.json").read_text())
    ours = json.loads((where / "ours.json").read_text())
    assert list(ours) == ["meta", "files", "totals"]
    assert ours["meta"]["branch_coverage"] is False
    assert list(ours["files"]) == list(theirs["files"])
    for name, entry in ours["files"].items():
        for key, value in entry.items():
            assert value == theirs["files"][name][key], (name, key)
    assert ours["totals"] == {k: theirs["totals"][k] for k in ours["totals"]}
    pretty = python.pycov(["json", "--pretty-print", "-o", "-"], where).stdout
    compact = python.pycov(["json", "-o", "-"], where).stdout
    assert pretty.startswith('{\n    "meta": {\n')
    without_time = [json.loads(text) for text in (pretty, compact)]
    for report in without_time:
        del report["meta"]["timestamp"]
    assert without_time[0] == without_time[1]


def test_configuration_and_flags(python, tmp_path):
    write(tmp_path / "pkg/__init__.py", "")
    write(tmp_path / "pkg/used.py", "def f(x):\n    if x:\n        return 1\n    return 2\n")
    write(tmp_path / "pkg/unused.py", "VALUE = 1\n")
    write(tmp_path / "main.py", "from pkg import used\nused.f(True)\n")
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.pycov]
        source = ["pkg"]
        data_file = "custom.data"
        show_missing = true
        precision = 1
        fail_under = 90
        """,
    )
    assert python.pycov(["run", "main.py"], tmp_path).returncode == 0
    assert (tmp_path / "custom.data").exists() and not (tmp_path / ".pycov").exists()
    report = python.pycov(["report"], tmp_path)
    assert report.returncode == 2
    assert report.stdout == (
        "Name              Stmts   Miss  Cover   Missing\n"
        "-----------------------------------------------\n"
        "pkg/__init__.py       0      0 100.0%\n"
        "pkg/unused.py         1      1   0.0%   1\n"
        "pkg/used.py           4      1  75.0%   4\n"
        "-----------------------------------------------\n"
        "TOTAL                 5      2  60.0%\n"
        "Coverage failure: total of 60.0 is less than fail-under=90.0\n"
    )
    # Flags win over the configuration.
    report = python.pycov(["report", "--precision", "0", "--fail-under", "50"], tmp_path)
    assert report.returncode == 0
    assert "TOTAL                 5      2    60%\n" in report.stdout
    env = python.env(PYCOV_FILE="custom.data")
    assert python.pycov(["report", "--data-file", "custom.data"], tmp_path, env=env).returncode == 2


def test_source_package_and_unimported_files(python, tmp_path):
    write(tmp_path / "lib/mylib/__init__.py", "from mylib import core\n")
    write(tmp_path / "lib/mylib/core.py", "def run():\n    return 'ran'\n")
    write(tmp_path / "lib/mylib/extra.py", "def never():\n    return 0\n")
    write(tmp_path / "lib/other.py", "X = 1\n")
    write(tmp_path / "main.py", "import sys\nsys.path.insert(0, 'lib')\nimport mylib, other\nprint(mylib.core.run())\n")
    result = python.pycov(["run", "--source", "mylib,missing_pkg", "main.py"], tmp_path)
    assert result.returncode == 0
    assert result.stdout == "ran\n"
    assert result.stderr == "pycov: warning: module missing_pkg was never imported\n"
    files = python.pycov_json(tmp_path)["files"]
    assert sorted(files) == ["lib/mylib/__init__.py", "lib/mylib/core.py", "lib/mylib/extra.py"]
    assert files["lib/mylib/extra.py"]["missing_lines"] == [1, 2]


def test_include_and_omit_when_running(python, tmp_path):
    for name in ("a.py", "b.py", "sub/c.py"):
        write(tmp_path / name, "X = 1\n")
    write(tmp_path / "main.py", "import sys\nsys.path.insert(0, 'sub')\nimport a, b, c\n")
    assert python.pycov(["run", "--omit", "b.py", "main.py"], tmp_path).returncode == 0
    assert sorted(python.pycov_json(tmp_path)["files"]) == ["a.py", "main.py", "sub/c.py"]
    assert python.pycov(["run", "--include", "*/sub/*", "main.py"], tmp_path).returncode == 0
    assert sorted(python.pycov_json(tmp_path)["files"]) == ["sub/c.py"]
    result = python.pycov(["run", "--include", "*/sub/*", "--source", ".", "main.py"], tmp_path)
    assert result.stderr == "pycov: warning: --include is ignored because --source is set\n"


def test_no_data_to_report(python, tmp_path):
    write(tmp_path / "prog.py", "x = 1\n")
    assert python.pycov(["run", "prog.py"], tmp_path).returncode == 0
    for command in (["report", "--omit", "*"], ["json", "--omit", "*", "-o", "-"]):
        result = python.pycov(command, tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "pycov: no data to report\n")
