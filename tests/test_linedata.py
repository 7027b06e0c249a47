"""Python 3.12/3.13: pycov computes the line data CPython keeps for `LINE`
events and writes it before turning the events on, so CPython skips
computing it, and instruments functions that have not run yet itself
(crates/pycov-runner/src/linedata.rs). With `PYCOV_DEBUG=linedata` pycov
also has CPython do it for a copy of every code object and compares: here
over standard-library packages, whose code has every construct the rules
cover."""

from __future__ import annotations

import re

from pycov_testing import write

PROGRAM = """
import argparse, asyncio, calendar, csv, dataclasses, decimal, difflib, email.parser, fractions, io, json
import statistics, textwrap, tokenize


async def main():
    async def numbers():
        for i in range(3):
            yield i
            await asyncio.sleep(0)
    return [i async for i in numbers()]


print(asyncio.run(main()))
print(json.dumps({"a": [1, 2, {"b": None}]}, indent=1).count("\\n"))
print(email.parser.Parser().parsestr("Subject: hi\\n\\nbody")["Subject"])
print(decimal.Decimal("1.1") + 2, fractions.Fraction(3, 4), statistics.mean([1, 2, 4]))
print(len(list(difflib.unified_diff(["a"], ["b"]))), len(textwrap.fill("x " * 50)), calendar.month(2024, 1)[:3])
print(len(list(tokenize.generate_tokens(io.StringIO("x = [1, 2]\\n").readline))))
print(next(csv.reader(["a,b"])), argparse.ArgumentParser(prog="p").parse_args([]))
"""

PACKAGES = ["asyncio", "json", "email", "decimal", "fractions", "statistics", "difflib", "textwrap",
            "calendar", "tokenize", "csv", "argparse", "dataclasses"]

SUMMARY = re.compile(r"pycov: linedata: written ahead for (\d+) code objects \((\d+) instrumented ahead\); "
                     r"(\d+) checked against CPython, (\d+) differed")


def test_line_data_equals_cpythons(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    sources = [arg for package in PACKAGES for arg in ("--source", package)]
    result = python.pycov(["run", *sources, "--data-file", "data.pycov", "prog.py"], tmp_path,
                          env=python.env(PYCOV_DEBUG="linedata"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == ["[0, 1, 2]", "8", "hi"]
    summary = SUMMARY.search(result.stderr)
    if python.info < (3, 12):
        # 3.11 has no sys.monitoring (a trace function instead).
        assert summary is None, result.stderr
        return
    assert summary, result.stderr
    written, ahead, checked, differed = map(int, summary.groups())
    assert "differs from CPython" not in result.stderr
    assert differed == 0
    assert written == checked
    assert written > 1000, result.stderr
    # Functions nested in measured modules, instrumented by pycov itself
    # and compared with what CPython makes of a copy (but for PY_START).
    assert ahead > 1000, result.stderr
    report = python.pycov_json(tmp_path, "data.pycov")
    assert any(name.endswith("json/encoder.py") and info["executed_lines"] for name, info in report["files"].items())
