#!/usr/bin/env python3
"""Run a program under coverage.py and under pycov; compare the lines.

For every file, `executed_lines`, `missing_lines` and `excluded_lines` of
`pycov json` must equal those of `coverage json` (coverage 7.17.4, same
`--source`, default settings: an empty rc file keeps project configs out).
Prints one table row per run and the differences; exits 1 on any.

    compare_with_coverage.py --python PY [--source SRC] [--cwd DIR] [--name N] -- TARGET...
    compare_with_coverage.py --suites BENCH_HOME --python PY [--python PY...]

TARGET is what follows `python`: `script.py args` or `-m pytest ...`. With
`--suites`, the toolz, boltons and idna suites of `../shared/bench` (set up by
its `setup.sh` in BENCH_HOME) are run with each interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SUITES_TOML = Path(__file__).resolve().parents[3] / "shared" / "bench" / "suites.toml"
SCRUB = ("PYTHONPATH", "COVERAGE_FILE", "COVERAGE_RCFILE", "COVERAGE_CORE", "PYCOV_FILE",
         "PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")
FIELDS = ("executed_lines", "missing_lines", "excluded_lines")


@dataclass
class Comparison:
    name: str
    python: str
    files: int = 0
    statements: int = 0
    covered: int = 0
    differences: list[str] = field(default_factory=list)
    exit_codes: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return not self.differences and self.exit_codes[0] == self.exit_codes[1]


def python_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_json(argv: list[str], cwd: Path, env: dict[str, str], report: list[str]) -> tuple[int, dict, str]:
    run = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    made = subprocess.run(report, cwd=cwd, env=env, capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"{' '.join(report)} failed:\n{made.stdout}{made.stderr}\n"
                           f"(run: {run.returncode}\n{run.stdout[-2000:]}{run.stderr[-2000:]})")
    out = Path(report[report.index("-o") + 1])
    return run.returncode, json.loads(out.read_text()), run.stdout + run.stderr


def compare(name: str, python: str, cwd: Path, source: str, target: list[str],
            extra_env: dict[str, str] | None = None) -> Comparison:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory(prefix="pycov-compare-") as tmp:
        tmp_path = Path(tmp)
        rcfile = tmp_path / "empty.rc"
        rcfile.write_text("")
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path / "hypothesis-coverage")
        coverage_rc, coverage_report, coverage_out = run_json(
            [python, "-m", "coverage", "run", f"--rcfile={rcfile}", f"--data-file={tmp_path / 'c.data'}",
             f"--source={source}", *target],
            cwd, env,
            [python, "-m", "coverage", "json", f"--rcfile={rcfile}", f"--data-file={tmp_path / 'c.data'}",
             "-o", str(tmp_path / "coverage.json")],
        )
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path / "hypothesis-pycov")
        pycov_rc, pycov_report, pycov_out = run_json(
            [python, "-m", "pycov", "run", "--source", source, "--data-file", str(tmp_path / "p.data"), *target],
            cwd, env,
            [python, "-m", "pycov", "json", "--data-file", str(tmp_path / "p.data"),
             "-o", str(tmp_path / "pycov.json")],
        )
    result = Comparison(name, python_version(python), exit_codes=(coverage_rc, pycov_rc))
    theirs, ours = coverage_report["files"], pycov_report["files"]
    for missing in sorted(set(theirs) - set(ours)):
        result.differences.append(f"{missing}: measured by coverage.py only")
    for extra in sorted(set(ours) - set(theirs)):
        result.differences.append(f"{extra}: measured by pycov only")
    for path in sorted(set(theirs) & set(ours)):
        for key in FIELDS:
            a, b = set(theirs[path][key]), set(ours[path][key])
            if a != b:
                result.differences.append(
                    f"{path}: {key}: coverage.py only {sorted(a - b)}, pycov only {sorted(b - a)}")
    result.files = len(theirs)
    result.statements = coverage_report["totals"]["num_statements"]
    result.covered = coverage_report["totals"]["covered_lines"]
    if coverage_rc != pycov_rc:
        result.differences.append(f"exit status: coverage.py {coverage_rc}, pycov {pycov_rc}\n"
                                  f"--- coverage.py output ---\n{coverage_out[-3000:]}\n"
                                  f"--- pycov output ---\n{pycov_out[-3000:]}")
    return result


def print_table(results: list[Comparison]) -> None:
    print("| run | Python | files | statements | covered | differing files | result |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in results:
        differing = len({d.split(":")[0] for d in r.differences})
        print(f"| {r.name} | {r.python} | {r.files} | {r.statements} | {r.covered} | {differing} | "
              f"{'identical' if r.ok else 'DIFFERENT'} |")
    for r in results:
        for difference in r.differences:
            print(f"  {r.name} {r.python}: {difference}")


def suites(bench_home: Path, pythons: list[str], only: list[str]) -> list[Comparison]:
    with open(SUITES_TOML, "rb") as f:
        specs = tomllib.load(f)["suite"]
    results = []
    for spec in specs:
        if only and spec["name"] not in only:
            continue
        root = bench_home / "suites" / spec["dir"]
        if not root.is_dir():
            sys.exit(f"{root} missing: run ../shared/bench/setup.sh {bench_home}")
        pythonpath = os.pathsep.join(str((root / p).resolve()) for p in spec.get("pythonpath", []))
        for python in pythons:
            results.append(compare(spec["name"], python, root, spec.get("source", "."),
                                   ["-m", "pytest", *spec["pytest_args"]], {"PYTHONPATH": pythonpath}))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", required=True, help="interpreter with pycov and coverage")
    parser.add_argument("--source", default=".")
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    parser.add_argument("--name", default=None)
    parser.add_argument("--suites", type=Path, metavar="BENCH_HOME")
    parser.add_argument("--only", action="append", default=[], help="suite names (with --suites)")
    parser.add_argument("target", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.suites:
        results = suites(args.suites, args.python, args.only)
    else:
        target = args.target[1:] if args.target[:1] == ["--"] else args.target
        if not target:
            parser.error("nothing to run")
        results = [compare(args.name or args.cwd.name, python, args.cwd, args.source, target)
                   for python in args.python]
    print_table(results)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
