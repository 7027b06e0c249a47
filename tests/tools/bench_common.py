"""What the end-to-end benchmarks in this folder share: a generated
project, an environment free of the tools' settings, timed runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def write_project(root: Path, files: int, module: str, driver: str) -> None:
    """FILES copies of `module` as pkgN/module_I.py (100 per package) and
    `driver` as driver.py."""
    for i in range(files):
        package = root / f"pkg{i // 100}"
        if not package.exists():
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
        (package / f"module_{i}.py").write_text(module)
    (root / "driver.py").write_text(driver)


@contextlib.contextmanager
def work_root(workdir: Path | None, name: str) -> Iterator[Path]:
    """`workdir` (created if needed, kept), or a temporary directory removed
    at the end."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    root = Path(tempfile.mkdtemp(prefix=f"pycov-bench-{name}-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def clean_env() -> dict[str, str]:
    """This environment without coverage.py's or pycov's settings, and
    without bytecode files (so no run inherits another's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "PYCOV_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds `argv` took; exits with its output if it failed."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return elapsed
