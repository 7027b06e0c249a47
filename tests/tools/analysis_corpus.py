#!/usr/bin/env python3
"""Compare pycov's statement model with coverage.py's parser, file by file.

Runs inside the interpreter under test (it needs pycov and coverage):

    python analysis_corpus.py [--step N] [--max-bytes B] DIR_OR_FILE...

For every `.py` file that compiles, `pycov._pycov.analyze_file` must give
the statements and excluded lines that coverage.py's `PythonParser` gives.
Prints the differences and a summary line; exits 1 on any difference.
"""

import argparse
import os
import sys
import warnings

from coverage.config import DEFAULT_EXCLUDE
from coverage.misc import join_regex
from coverage.parser import PythonParser
from coverage.python import get_python_source

from pycov._pycov import analyze_file


def python_files(roots):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".py"):
                    yield os.path.join(dirpath, name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", type=int, default=1, help="check every Nth file")
    parser.add_argument("--max-bytes", type=int, default=10**7)
    parser.add_argument("roots", nargs="+")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    exclude = join_regex(DEFAULT_EXCLUDE)
    checked = differing = 0
    for index, path in enumerate(python_files(args.roots)):
        if index % args.step or os.path.getsize(path) > args.max_bytes:
            continue
        try:
            text = get_python_source(path)
            compile(text, path, "exec", dont_inherit=True)
            theirs = PythonParser(text=text, filename=path, exclude=exclude)
            theirs.parse_source()
        except Exception:
            continue  # not Python this interpreter accepts
        checked += 1
        try:
            statements, excluded = analyze_file(path)
        except ValueError as exc:
            differing += 1
            print(f"{path}: pycov could not analyse it: {exc}")
            continue
        for what, ours, expected in (("statements", statements, theirs.statements),
                                     ("excluded", excluded, theirs.excluded)):
            if set(ours) != expected:
                differing += 1
                print(f"{path}: {what}: pycov only {sorted(set(ours) - expected)[:20]}, "
                      f"coverage.py only {sorted(expected - set(ours))[:20]}")
    print(f"{sys.version.split()[0]}: {checked} files checked, {differing} differences")
    return 1 if differing or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
