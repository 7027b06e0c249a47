#!/usr/bin/env python3
"""Time `xml`, `lcov` and `json` of pycov and coverage.py on one big project.

Generates FILES modules of about 400 statements each (2 classes of 5
methods, 10 functions, 20 statements per function), runs a driver that
imports them all and calls 7 of every 10 functions under both tools, then
times each report command end to end (process start, reading the data,
writing the file): pycov best of REPEAT, coverage.py once (it takes minutes). Prints a Markdown table with the ratios.

    bench_reports.py --python VENV/bin/python [--files 5000] [--repeat 3] [--workdir DIR]

The interpreter needs pycov and coverage installed. The in-process cost of
pycov's writers alone is `cargo bench -p pycov-report`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_common import clean_env, run, work_root, write_project

FUNCTION_BODY = 18


def function(name: str, indent: str, first_arg: str) -> str:
    body = "".join(f"{indent}    v{i} = {i} * 2\n" for i in range(FUNCTION_BODY))
    return f"{indent}def {name}({first_arg}):\n{body}{indent}    return v0\n\n"


def module_source() -> str:
    parts = []
    for c in range(2):
        parts.append(f"class Class{c}:\n")
        parts.extend(function(f"method_{m}", "    ", "self") for m in range(5))
    parts.extend(function(f"function_{f}", "", "x") for f in range(10))
    return "".join(parts)


DRIVER = """\
import importlib, sys
for i in range({files}):
    module = importlib.import_module(f"pkg{{i // 100}}.module_{{i}}")
    for f in range(7):
        getattr(module, f"function_{{f}}")(i)
    for c in range(2):
        obj = getattr(module, f"Class{{c}}")()
        for m in range(3 + c):
            getattr(obj, f"method_{{m}}")()
"""


def generate(root: Path, files: int) -> None:
    write_project(root, files, module_source(), DRIVER.format(files=files))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    with work_root(args.workdir, "reports") as root:
        env = clean_env()
        rc = root / "empty.rc"
        if not (root / "driver.py").exists():
            generate(root, args.files)
        rc.write_text("")
        run([args.python, "-m", "coverage", "run", f"--rcfile={rc}", "--source=.", "driver.py"], root, env)
        run([args.python, "-m", "pycov", "run", "--source", ".", "driver.py"], root, env)
        totals = json.loads(subprocess.run([args.python, "-m", "pycov", "json", "-o", "-"], cwd=root, env=env,
                                           capture_output=True, text=True, check=True).stdout)["totals"]
        print(f"{args.files} files, {totals['num_statements']} statements, "
              f"{totals['covered_lines']} run; pycov best of {args.repeat}, coverage.py once\n")
        print("| report | coverage.py 7.17.4 | pycov | ratio |")
        print("|---|---:|---:|---:|")
        for kind in ("xml", "lcov", "json"):
            # coverage.py takes minutes here: one run says enough.
            theirs = run([args.python, "-m", "coverage", kind, f"--rcfile={rc}", "-o", f"theirs.{kind}"], root, env)
            ours = min(run([args.python, "-m", "pycov", kind, "-o", f"ours.{kind}"], root, env)
                       for _ in range(args.repeat))
            print(f"| {kind} | {theirs:.2f} s | {ours:.3f} s | {theirs / ours:.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
