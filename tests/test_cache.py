"""The analysis cache: a second run reuses analyses, and nothing about it
can change an answer."""

from __future__ import annotations

from pycov_testing import file_lines, write

PROGRAM = {
    "main.py": "import helper\nprint(helper.f(2))\n",
    "helper.py": "def f(x):\n    if x > 5:\n        return 0  # pragma: no cover\n    return (x +\n            1)\n",
}


def run(python, where, cache, **env):
    return python.pycov(["run", "main.py"], where,
                        env=python.env(PYCOV_CACHE_DIR=str(cache), PYCOV_DEBUG="analysis", **env))


def analysis_notes(stderr):
    return sorted(line.split(": ", 3)[-1] for line in stderr.splitlines() if line.startswith("pycov: analysis:"))


def test_second_run_uses_the_cache(python, tmp_path):
    for name, text in PROGRAM.items():
        write(tmp_path / name, text)
    cache = tmp_path / "cache"
    first = run(python, tmp_path, cache)
    assert first.returncode == 0, first.stderr
    assert "from the cache" not in first.stderr
    report = python.pycov_json(tmp_path)
    second = run(python, tmp_path, cache)
    assert analysis_notes(second.stderr) == ["from the cache", "from the cache"]
    assert python.pycov_json(tmp_path)["files"] == report["files"]
    assert file_lines(report, "helper.py") == ([1, 2, 4], [])


def test_a_changed_source_or_rule_is_a_miss(python, tmp_path):
    for name, text in PROGRAM.items():
        write(tmp_path / name, text)
    cache = tmp_path / "cache"
    run(python, tmp_path, cache)
    write(tmp_path / "helper.py", PROGRAM["helper.py"] + "\nEXTRA = 1\n")
    changed = run(python, tmp_path, cache)
    assert analysis_notes(changed.stderr)[0] == "from the cache"
    assert "from the cache" not in [n for n in analysis_notes(changed.stderr)][1:]
    write(tmp_path / "pyproject.toml", "[tool.pycov]\nexclude_also = ['return \\(x']\n")
    excluded = run(python, tmp_path, cache)
    assert "from the cache" not in excluded.stderr
    assert file_lines(python.pycov_json(tmp_path), "helper.py") == ([1, 2, 7], [])


def test_damaged_entries_are_misses(python, tmp_path):
    for name, text in PROGRAM.items():
        write(tmp_path / name, text)
    cache = tmp_path / "cache"
    run(python, tmp_path, cache)
    expected = python.pycov_json(tmp_path)["files"]
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert len(entries) == 2
    for entry in entries:
        data = bytearray(entry.read_bytes())
        data[len(data) // 2] ^= 0xFF
        entry.write_bytes(bytes(data))
    again = run(python, tmp_path, cache)
    assert again.returncode == 0
    assert "from the cache" not in again.stderr
    assert python.pycov_json(tmp_path)["files"] == expected


def test_empty_cache_dir_disables_the_cache(python, tmp_path):
    for name, text in PROGRAM.items():
        write(tmp_path / name, text)
    result = python.pycov(["run", "main.py"], tmp_path,
                          env=python.env(PYCOV_CACHE_DIR="", HOME=str(tmp_path / "home"), XDG_CACHE_HOME=""))
    assert result.returncode == 0
    assert not (tmp_path / "home").exists()
