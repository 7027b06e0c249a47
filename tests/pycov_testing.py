"""Helpers for the end-to-end tests (importable from any test module)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(path: Path, text: str, dedent: bool = True) -> Path:
    """Writes `text` to `path` (dedented), creating directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if dedent:
        text = textwrap.dedent(text).removeprefix("\n")
    path.write_text(text, encoding="utf-8")
    return path


def same_result(plain, measured) -> None:
    """Asserts two CompletedProcess results are identical for the user."""
    assert (measured.returncode, measured.stdout, measured.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )


def file_lines(report: dict, name: str) -> tuple[list[int], list[int]]:
    """(executed, missing) lines of `name` in a coverage.py-style JSON report."""
    entry = report["files"][name]
    return entry["executed_lines"], entry["missing_lines"]


def parallel_files(where: Path) -> list[Path]:
    """The pending parallel data files (`.pycov.*`) in `where`, sorted."""
    return sorted(where.glob(".pycov.*"))
