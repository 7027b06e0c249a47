"""Shared fixtures: the interpreters under test and helpers to run programs.

The suite runs under any Python and drives each interpreter listed in
``PYCOV_TEST_PYTHONS`` (``3.11=/path/bin/python 3.12=...``; ``.ci/run`` sets
it), each with pycov, coverage 7.17.4 and pytest installed. Without the
variable, the interpreter running pytest is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# The comparison tool doubles as a library for the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = ROOT / "sample_projects"

# Variables that would change what the programs under test do.
SCRUBBED = ("PYTHONPATH", "PYCOV_FILE", "PYCOV_PROCESS_START", "PYCOV_DEBUG", "PYCOV_CACHE_DIR", "COVERAGE_FILE",
            "COVERAGE_PROCESS_START", "COVERAGE_RCFILE", "COVERAGE_CORE", "PYTEST_ADDOPTS", "PYTHONWARNINGS", "PYTHONSAFEPATH")


def _interpreters() -> dict[str, str]:
    spec = os.environ.get("PYCOV_TEST_PYTHONS", "").split()
    if not spec:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return {version: sys.executable}
    found = {}
    for item in spec:
        version, _, path = item.partition("=")
        found[version] = path
    return found


INTERPRETERS = _interpreters()

# pycov's analysis cache, shared by the whole session, never the user's.
CACHE_DIR = tempfile.mkdtemp(prefix="pycov-test-cache-")


@dataclass(frozen=True)
class Python:
    """One interpreter under test."""

    version: str
    executable: str

    @property
    def info(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env["PYCOV_CACHE_DIR"] = CACHE_DIR
        env.update(extra)
        return env

    def run(self, args, cwd, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
        """Runs `python ARGS` with captured text output."""
        return subprocess.run(
            [self.executable, *map(str, args)],
            cwd=cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def pycov(self, args, cwd, **kwargs) -> subprocess.CompletedProcess:
        """Runs `python -m pycov ARGS`."""
        return self.run(["-m", "pycov", *args], cwd, **kwargs)

    def pycov_json(self, cwd, data_file=".pycov") -> dict:
        result = self.pycov(["json", "--data-file", data_file, "-o", "-"], cwd)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def coverage_json(self, cwd, data_file=".coverage") -> dict:
        out = Path(cwd) / "coverage-check.json"
        result = self.run(["-m", "coverage", "json", "--data-file", data_file, "-o", out], cwd)
        assert result.returncode == 0, result.stderr + result.stdout
        return json.loads(out.read_text())


@pytest.fixture(params=sorted(INTERPRETERS), ids=lambda v: f"py{v}")
def python(request) -> Python:
    return Python(request.param, INTERPRETERS[request.param])


@pytest.fixture
def project(tmp_path):
    """Returns a function that copies a fixture or sample project into tmp_path."""

    def copy(name: str, source: Path = FIXTURES) -> Path:
        target = tmp_path / name
        shutil.copytree(source / name, target)
        return target

    return copy


