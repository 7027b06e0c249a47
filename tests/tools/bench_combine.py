#!/usr/bin/env python3
"""Time `pycov combine` against `coverage combine` on the same parallel runs.

Generates a project of FILES modules (10 functions of 8 statements each),
measures RUNS distinct runs under both tools in parallel mode (run i calls
the functions whose number is congruent to i modulo 7, so the runs differ),
then copies those data files until there are INPUTS of each, and times one
combine of all of them per tool (the work per input does not depend on
which lines it holds). Also reports pycov's peak memory for a tenth of the
inputs and for all of them: it should not grow with their number.

    bench_combine.py --python VENV/bin/python [--files 2000] [--inputs 1000] [--runs 20]

The interpreter needs pycov and coverage installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench_common import clean_env, run, work_root, write_project

FUNCTIONS = 10
BODY = 7

DRIVER = """\
import importlib, sys
run = int(sys.argv[1])
for i in range({files}):
    module = importlib.import_module(f"pkg{{i // 100}}.module_{{i}}")
    for f in range({functions}):
        if (i + f) % 7 == run % 7:
            getattr(module, f"function_{{f}}")(i)
"""


def generate(root: Path, files: int) -> None:
    body = "".join(f"    v{i} = x + {i}\n" for i in range(BODY))
    source = "".join(f"def function_{f}(x):\n{body}    return v0\n\n\n" for f in range(FUNCTIONS))
    write_project(root, files, source, DRIVER.format(files=files, functions=FUNCTIONS))


def peak_rss_mib(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Peak resident memory of one run of `argv`, in MiB."""
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed with exit status {child.returncode}")
    return usage.ru_maxrss / 1024


def replicate(where: Path, prefix: str, inputs: int) -> None:
    """Copies the parallel files `prefix.*` in `where` until there are
    `inputs`. coverage.py skips inputs whose bytes it has seen, so each copy
    of its SQLite file gets a meta row of its own."""
    originals = sorted(where.glob(f"{prefix}.*"))
    for n in range(inputs - len(originals)):
        source = originals[n % len(originals)]
        copy = where / f"{prefix}.copy.{n}.{source.name.rsplit('.', 1)[-1]}"
        shutil.copyfile(source, copy)
        if prefix == ".coverage":
            with sqlite3.connect(copy) as db:
                db.execute("insert into meta (key, value) values ('bench_copy', ?)", (str(n),))
            db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    with work_root(args.workdir, "combine") as root:
        env = clean_env()
        rc = root / "empty.rc"
        runs = root / "runs"
        if not (root / "driver.py").exists():
            generate(root, args.files)
        rc.write_text("[run]\nparallel = true\n")
        if not runs.exists():
            for i in range(args.runs):
                run([args.python, "-m", "coverage", "run", f"--rcfile={rc}", "--source=.", "driver.py", str(i)],
                    root, env)
                run([args.python, "-m", "pycov", "run", "-p", "--source", ".", "driver.py", str(i)], root, env)
            runs.mkdir()
            for data in [*root.glob(".coverage.*"), *root.glob(".pycov.*")]:
                shutil.move(data, runs / data.name)

        def fresh(inputs: int) -> Path:
            work = root / f"combine-{inputs}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(runs, work)
            shutil.copy(rc, work / "empty.rc")
            for prefix in (".coverage", ".pycov"):
                replicate(work, prefix, inputs)
            return work

        small = fresh(args.inputs // 10)
        small_rss = peak_rss_mib([args.python, "-m", "pycov", "combine", "-q"], small, env)
        work = fresh(args.inputs)
        full_rss = peak_rss_mib([args.python, "-m", "pycov", "combine", "-q"], work, env)
        work = fresh(args.inputs)
        ours = run([args.python, "-m", "pycov", "combine", "-q"], work, env)
        theirs = run([args.python, "-m", "coverage", "combine", "-q", f"--rcfile={work / 'empty.rc'}"], work, env)
        leftovers = len(list(work.glob(".pycov.*"))) + len(list(work.glob(".coverage.*")))
        if leftovers:
            sys.exit(f"{leftovers} inputs were not combined")

        print(f"{args.files} files, {args.inputs} parallel data files ({args.runs} distinct runs, copied; "
              "every input distinct for coverage.py)\n")
        print("| combine | coverage.py 7.17.4 | pycov | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| {args.inputs} inputs | {theirs:.2f} s | {ours:.3f} s | {theirs / ours:.0f}x |")
        print(f"\npycov peak memory: {small_rss:.0f} MiB for {args.inputs // 10} inputs, "
              f"{full_rss:.0f} MiB for {args.inputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
