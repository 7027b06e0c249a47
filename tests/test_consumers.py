"""The reports pass the tools that read them, with the numbers pycov
computed and without a warning: xmllint against coverage-04.dtd,
pycobertura, diff-cover (XML and LCOV), lcov 1.16 and 2.3.1 (`--summary`,
`-a`) and genhtml of both. lcov 2.x adds consistency checks that
coverage.py's own LCOV fails (FORMATS.md §3.3); `lcov_problems` checks those
rules and what diff-cover and Codecov need on every LCOV we write.

`.ci/run` installs the tools: lcov 1.16 and libxml2-utils with apt-get, lcov
2.3.1 from Debian trixie's package as `lcov2` and `genhtml2`, pycobertura and
diff-cover from tests/requirements-consumers.txt into the venv that runs
pytest. A missing tool fails the test; it never skips."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import FIXTURES, INTERPRETERS, SAMPLES, Python
from pycov_testing import write

DTD = FIXTURES / "coverage-04.dtd"
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
# The portable LCOV subset (FORMATS.md §3.3) without branch records.
LCOV_RECORDS = ("SF", "FN", "FNDA", "FNF", "FNH", "DA", "LF", "LH")


def tool(name: str) -> str:
    """The path of a consumer tool; fails the test when it is not installed."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get: lcov libxml2-utils; "
                    "lcov2/genhtml2: lcov 2.3.1 in target/ci/bin; pip: tests/requirements-consumers.txt)")
    return found


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def quiet(result: subprocess.CompletedProcess) -> None:
    """Exit status 0 and no warning or error anywhere in the output."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"warning|error", output, re.IGNORECASE), output


def git(args: list[str], cwd: Path) -> None:
    env_args = ["-c", "user.name=pycov", "-c", "user.email=pycov@example.invalid", "-c", "init.defaultBranch=main"]
    result = run(["git", *env_args, *args], cwd)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def newest() -> Python:
    version = max(INTERPRETERS, key=lambda v: tuple(map(int, v.split("."))))
    return Python(version, INTERPRETERS[version])


@pytest.fixture(scope="module")
def reports(newest, tmp_path_factory):
    """The inventory sample in a git repository whose branch adds an untested
    function, measured by its tests, with all three reports written."""
    where = tmp_path_factory.mktemp("consumers") / "inventory"
    shutil.copytree(SAMPLES / "inventory", where)
    git(["init", "-q"], where)
    git(["add", "."], where)
    git(["commit", "-q", "-m", "base"], where)
    git(["checkout", "-q", "-b", "feature"], where)
    pricing = where / "inventory" / "pricing.py"
    added_from = len(pricing.read_text().splitlines()) + 1
    with pricing.open("a") as f:
        f.write("\n\ndef bulk_rate(quantity: int) -> float:\n    if quantity > 100:\n        return 0.1\n    return 0.0\n")
    git(["commit", "-q", "-am", "bulk rate"], where)
    assert newest.pycov(["run", "--source", ".", *PYTEST], where).returncode == 0
    for command in (["xml"], ["lcov"], ["json"]):
        result = newest.pycov(command, where)
        assert result.returncode == 0, result.stderr
    ours = json.loads((where / "coverage.json").read_text())
    return where, ours, added_from


def test_xml_is_valid_against_the_dtd(reports):
    where, _, _ = reports
    quiet(run([tool("xmllint"), "--nonet", "--noout", "--dtdvalid", str(DTD), "coverage.xml"], where))


def test_xml_numbers_are_integers_and_consistent(reports):
    where, ours, _ = reports
    root = ElementTree.parse(where / "coverage.xml").getroot()
    lines = root.findall(".//line")
    assert all(re.fullmatch(r"[1-9][0-9]*", line.get("number")) for line in lines)
    assert all(line.get("hits") in ("0", "1") for line in lines)
    assert int(root.get("lines-valid")) == len(lines) == ours["totals"]["num_statements"]
    assert int(root.get("lines-covered")) == sum(line.get("hits") == "1" for line in lines)
    assert re.fullmatch(r"1\d{12}", root.get("timestamp"))
    for element in [root, *root.iter("package"), *root.iter("class")]:
        assert re.fullmatch(r"0|1|0\.[0-9]{1,7}", element.get("line-rate")), element.attrib
    sources = [s.text for s in root.iter("source")]
    for cls in root.iter("class"):
        assert any((Path(source) / cls.get("filename")).is_file() for source in sources), cls.attrib
        entry = ours["files"][cls.get("filename")]
        assert [int(line.get("number")) for line in cls.iter("line")] == sorted(
            entry["executed_lines"] + entry["missing_lines"])


def test_pycobertura_reads_the_same_numbers(newest, reports):
    where, ours, _ = reports
    result = run([tool("pycobertura"), "show", "--format", "json", "coverage.xml"], where)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    shown = json.loads(result.stdout)
    rows = {row["Filename"]: (row["Stmts"], row["Miss"]) for row in shown["files"]}
    assert rows == {name: (entry["summary"]["num_statements"], entry["summary"]["missing_lines"])
                    for name, entry in ours["files"].items()}
    table = newest.pycov(["report", "-m"], where).stdout.splitlines()[2:-2]
    our_missing = {line.split()[0]: " ".join(line.split()[4:]) for line in table}
    assert {row["Filename"]: row["Missing"] for row in shown["files"]} == our_missing
    assert (shown["total"]["Stmts"], shown["total"]["Miss"]) == (
        ours["totals"]["num_statements"], ours["totals"]["missing_lines"])


@pytest.mark.parametrize("report", ["coverage.xml", "coverage.lcov"])
def test_diff_cover_finds_the_untested_new_lines(reports, report):
    where, ours, added_from = reports
    result = run([tool("diff-cover"), report, "--compare-branch=main", "--format", "json:diff.json"], where)
    quiet(result)
    diff = json.loads((where / "diff.json").read_text())
    pricing = ours["files"]["inventory/pricing.py"]
    added = set(range(added_from, added_from + 7))
    expected_missing = sorted(set(pricing["missing_lines"]) & added)
    expected_covered = sorted(set(pricing["executed_lines"]) & added)
    assert expected_missing and expected_covered
    stats = diff["src_stats"]["inventory/pricing.py"]
    assert sorted(stats["violation_lines"]) == expected_missing
    assert sorted(stats["covered_lines"]) == expected_covered
    assert diff["total_num_violations"] == len(expected_missing)


LCOVS = ["lcov", "lcov2"]


@pytest.mark.parametrize("lcov", LCOVS)
def test_lcov_summary_shows_our_totals(reports, lcov):
    where, ours, _ = reports
    result = run([tool(lcov), "--summary", "coverage.lcov"], where)
    quiet(result)
    totals = ours["totals"]
    assert f"({totals['covered_lines']} of {totals['num_statements']} lines)" in result.stdout + result.stderr
    functions = [region for entry in ours["files"].values() for name, region in entry["functions"].items()
                 if name and region["summary"]["num_statements"]]
    hit = sum(region["summary"]["covered_lines"] > 0 for region in functions)
    assert f"({hit} of {len(functions)} functions)" in result.stdout + result.stderr


@pytest.mark.parametrize("lcov", LCOVS)
def test_lcov_adding_a_file_to_itself_doubles_every_count(reports, lcov):
    where, _, _ = reports
    quiet(run([tool(lcov), "-q", "-a", "coverage.lcov", "-a", "coverage.lcov", "-o", f"twice-{lcov}.info"], where))
    once = parse_counts((where / "coverage.lcov").read_text())
    twice = parse_counts((where / f"twice-{lcov}.info").read_text())
    assert once and twice == {key: 2 * count for key, count in once.items()}


def parse_counts(text: str) -> dict[tuple[str, str, str], int]:
    """(file, DA|FNDA, line or function) -> count."""
    counts = {}
    source = ""
    for line in text.splitlines():
        kind, _, value = line.partition(":")
        if kind == "SF":
            source = value
        elif kind == "DA":
            number, count = value.split(",")[:2]
            counts[(source, "DA", number)] = int(count)
        elif kind == "FNDA":
            count, name = value.split(",", 1)
            counts[(source, "FNDA", name)] = int(count)
        elif kind == "FNA":  # lcov 2.x: FNA:<index>,<count>,<name>
            _, count, name = value.split(",", 2)
            counts[(source, "FNDA", name)] = int(count)
    return counts


@pytest.mark.parametrize("genhtml", ["genhtml", "genhtml2"])
def test_genhtml_renders_the_tracefile(reports, genhtml):
    where, _, _ = reports
    quiet(run([tool(genhtml), "-q", "-o", f"html-{genhtml}", "coverage.lcov"], where))
    index = (where / f"html-{genhtml}" / "index.html").read_text()
    assert "inventory" in index


def lcov_problems(text: str) -> list[str]:
    """What lcov 2.x, diff-cover or Codecov would reject or misread."""
    problems = []
    if not text.endswith("end_of_record\n"):
        problems.append("does not end with end_of_record")
    for record in text.split("end_of_record\n")[:-1]:
        lines = record.split("\n")[:-1]
        if not lines or not lines[0].startswith("SF:") or len(lines[0]) == 3:
            problems.append(f"record without SF: {lines[:1]}")
            continue
        da, functions, hits, totals = {}, {}, {}, {}
        for line in lines[1:]:
            kind, colon, value = line.partition(":")
            if not colon or kind not in LCOV_RECORDS:
                problems.append(f"{lines[0]}: unknown record {line!r}")
            elif kind == "DA":
                number, count = value.split(",")
                if int(number) < 1 or number in da:
                    problems.append(f"{lines[0]}: bad or repeated {line}")
                da[number] = int(count)
            elif kind == "FN":
                number, name = value.split(",", 1)
                if int(number) < 1 or "," in name or name in functions:
                    problems.append(f"{lines[0]}: bad {line}")
                functions[name] = number
            elif kind == "FNDA":
                count, name = value.split(",", 1)
                hits[name] = int(count)
            else:
                totals[kind] = int(value)
        if set(hits) != set(functions):
            problems.append(f"{lines[0]}: FN and FNDA name different functions")
        expected = {"LF": len(da), "LH": sum(c > 0 for c in da.values()),
                    "FNF": len(functions), "FNH": sum(c > 0 for c in hits.values())}
        if totals != expected:
            problems.append(f"{lines[0]}: totals {totals}, records say {expected}")
    return problems


def test_lcov_keeps_lcov_2_consistency_rules(reports):
    where, _, _ = reports
    text = (where / "coverage.lcov").read_text()
    assert lcov_problems(text) == []
    assert "FNDA:0," in text, "an uncalled function: where coverage.py's LCOV fails lcov 2.x"
    # The checker itself catches what lcov 2.x rejects.
    assert lcov_problems("SF:a.py\nFN:1,f\nDA:1,1\nLF:1\nLH:1\nend_of_record\n")
    assert lcov_problems("SF:a.py\nDA:1,1\nLF:1\nLH:1\n\nend_of_record\n")
    assert lcov_problems("SF:a.py\nDA:1,1\nLF:2\nLH:1\nend_of_record\n")


def test_lcov_2_rejects_what_coverage_py_writes_for_an_uncalled_function(tmp_path):
    """The lcov 2.x check is real: coverage.py 7.17.4's record for a module
    whose function never ran (FN with an end line, FNDA:0, `def` line hit)."""
    write(tmp_path / "mod.py", "def f():\n    return 1\n", dedent=False)
    write(tmp_path / "coveragepy.lcov", "SF:mod.py\nDA:1,1\nDA:2,0\nLF:2\nLH:1\nFN:1,2,f\nFNDA:0,f\n"
          "FNF:1\nFNH:0\nend_of_record\n", dedent=False)
    result = run([tool("lcov2"), "--summary", "coveragepy.lcov"], tmp_path)
    assert result.returncode != 0
    assert "(inconsistent)" in result.stdout + result.stderr


HOSTILE = ['amp&lt<gt>"quote".py', "tab\there.py", "new\nline.py", "esc\x1b[31mape.py", "é ü 中文.py",
           "with space.py", "rtl\u202eyp.py", "empty.py", "big.py"]


def test_hostile_inputs_give_well_formed_reports(newest, tmp_path):
    for name in HOSTILE:
        write(tmp_path / name, "x = 1\n" if name != "empty.py" else "", dedent=False)
    write(tmp_path / "big.py", "".join(f"v{i} = {i}\n" for i in range(100_000)), dedent=False)
    write(tmp_path / "main.py", "import os, runpy\nfor name in sorted(os.listdir('.')):\n"
          "    if name.endswith('.py') and name != 'main.py':\n        runpy.run_path(name)\n", dedent=False)
    run_result = newest.pycov(["run", "main.py"], tmp_path)
    assert run_result.returncode == 0, run_result.stderr
    for command in (["xml"], ["lcov"], ["json"]):
        result = newest.pycov(command, tmp_path)
        assert result.returncode == 0, result.stderr

    quiet(run([tool("xmllint"), "--nonet", "--noout", "--dtdvalid", str(DTD), "coverage.xml"], tmp_path))
    classes = ElementTree.parse(tmp_path / "coverage.xml").getroot().findall(".//class")
    assert len(classes) == len(HOSTILE) + 1
    assert 'amp&lt<gt>"quote".py' in {c.get("filename") for c in classes}
    big = next(c for c in classes if c.get("filename") == "big.py")
    assert len(big.findall(".//line")) == 100_000

    lcov = (tmp_path / "coverage.lcov").read_text()
    assert lcov_problems(lcov) == []
    assert lcov.count("SF:") == len(HOSTILE) + 1
    for lcov in LCOVS:
        quiet(run([tool(lcov), "--summary", "coverage.lcov"], tmp_path))

    report = json.loads((tmp_path / "coverage.json").read_text())
    assert set(report["files"]) == {*HOSTILE, "main.py"}
    assert report["files"]["empty.py"]["summary"]["num_statements"] == 0

    table = newest.pycov(["report"], tmp_path).stdout
    assert len(table.splitlines()) == len(HOSTILE) + 1 + 4
    assert "\x1b" not in table and "\t" not in table and "\u202e" not in table
