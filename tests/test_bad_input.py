"""Bad input: a clear `pycov:` message naming the file and the problem, a
non-zero exit, no panic, and no lost or half-written data."""

from __future__ import annotations

import struct

from pycov_testing import file_lines, write


def test_missing_script(python, tmp_path):
    plain = python.run(["nope.py"], tmp_path)
    result = python.pycov(["run", "nope.py"], tmp_path)
    assert result.returncode == plain.returncode == 2
    expected = f"pycov: can't open file '{tmp_path / 'nope.py'}': [Errno 2] No such file or directory\n"
    assert result.stderr == expected
    assert plain.stderr.endswith(expected.removeprefix("pycov"))
    assert not (tmp_path / ".pycov").exists()


def test_unknown_module_keeps_earlier_data(python, tmp_path):
    write(tmp_path / "ok.py", "x = 1\n")
    assert python.pycov(["run", "ok.py"], tmp_path).returncode == 0
    before = (tmp_path / ".pycov").read_bytes()
    plain = python.run(["-m", "no_such_module"], tmp_path)
    result = python.pycov(["run", "-m", "no_such_module"], tmp_path)
    assert result.returncode == plain.returncode == 1
    assert result.stderr == "pycov: No module named no_such_module\n"
    assert plain.stderr.endswith(": No module named no_such_module\n")
    assert (tmp_path / ".pycov").read_bytes() == before


def test_syntax_error_in_the_script_is_reported_as_python_does(python, tmp_path):
    write(tmp_path / "broken.py", "print('fine')\nx = (1,\n     2\nprint(x)\n")
    plain = python.run(["broken.py"], tmp_path)
    result = python.pycov(["run", "broken.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", plain.stderr)
    assert plain.returncode == 1
    assert "SyntaxError" in result.stderr
    assert not (tmp_path / ".pycov").exists()


def test_unwritable_data_file_location_stops_before_running(python, tmp_path):
    write(tmp_path / "prog.py", "print('should not run')\n")
    write(tmp_path / "a_file", "")
    for data_file in ("missing_dir/.pycov", "a_file/.pycov"):
        result = python.pycov(["run", "--data-file", data_file, "prog.py"], tmp_path)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.startswith(f"pycov: cannot write data file {tmp_path / data_file}: ")
    (tmp_path / "a_dir").mkdir()
    result = python.pycov(["run", "--data-file", "a_dir", "prog.py"], tmp_path)
    assert result.returncode == 1
    assert "pycov: cannot write data file" in result.stderr


def test_source_with_a_latin1_coding_cookie(python, tmp_path):
    source = "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n\ndef greet():\n    return NAME + ' ok'\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    write(tmp_path / "main.py", "import latin\nprint(latin.greet())\n")
    result = python.pycov(["run", "main.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "café ok\n", "")
    assert file_lines(python.pycov_json(tmp_path), "latin.py") == ([2, 4, 5], [])


def test_source_deleted_during_the_run(python, tmp_path):
    write(tmp_path / "helper.py", "def f():\n    return 1\n")
    write(
        tmp_path / "main.py",
        "import os, helper\nhelper.f()\nos.remove(helper.__file__)\nprint('done')\n",
    )
    result = python.pycov(["run", "main.py"], tmp_path)
    assert result.returncode == 0
    assert result.stdout == "done\n"
    assert result.stderr == (
        f"pycov: warning: {tmp_path / 'helper.py'}: cannot read the source "
        "(No such file or directory (os error 2)); its coverage is not saved\n"
    )
    report = python.pycov_json(tmp_path)
    assert sorted(report["files"]) == ["main.py"]


def test_unparseable_file_under_source_is_named_and_skipped(python, tmp_path):
    write(tmp_path / "src/good.py", "x = 1\n")
    write(tmp_path / "src/bad.py", "def broken(:\n    pass\n")
    write(tmp_path / "main.py", "import sys\nsys.path.insert(0, 'src')\nimport good\n")
    result = python.pycov(["run", "--source", "src", "main.py"], tmp_path)
    assert result.returncode == 0
    bad = tmp_path / "src/bad.py"
    assert result.stderr.startswith(f"pycov: warning: {bad}: couldn't parse it as Python (")
    assert result.stderr.endswith("; it is left out\n")
    assert sorted(python.pycov_json(tmp_path)["files"]) == ["src/good.py"]


def test_damaged_foreign_and_future_data_files(python, tmp_path):
    write(tmp_path / "prog.py", "x = 1\n")
    assert python.pycov(["run", "prog.py"], tmp_path).returncode == 0
    good = (tmp_path / ".pycov").read_bytes()
    cases = {
        "truncated": (good[: len(good) // 2], " is damaged: checksum mismatch (truncated or modified)"),
        "foreign": (b"SQLite format 3\x00" + b"\x00" * 100, ": not readable as coverage.py data: "),
        "junk": (b"\x00\x01 junk\n", " is not a pycov data file, an LCOV tracefile or Cobertura XML"),
        "future": (good[:8] + struct.pack("<I", 99) + good[12:], " uses data format 99, newer than this pycov"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        for command in (["report"], ["json", "-o", "-"]):
            result = python.pycov([*command, "--data-file", name], tmp_path)
            assert result.returncode == 1, name
            assert result.stdout == ""
            assert result.stderr.startswith(f"pycov: {tmp_path / name}{message}"), result.stderr


def test_report_without_data(python, tmp_path):
    result = python.pycov(["report"], tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"pycov: no data file {tmp_path / '.pycov'} (measure with `pycov run` first)\n"


def test_bad_options_and_configuration(python, tmp_path):
    write(tmp_path / "prog.py", "print('never')\n")
    result = python.pycov(["run", "--omit", "a***", "prog.py"], tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "pycov: invalid file pattern \"a***\": can't include '***'\n"
    result = python.pycov(["run", "--source", "no/such/dir", "prog.py"], tmp_path)
    assert result.returncode == 1
    assert "no/such/dir" in result.stderr
    write(tmp_path / "pyproject.toml", "[tool.pycov]\nprecision = 'two'\n")
    result = python.pycov(["run", "prog.py"], tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"pycov: {tmp_path / 'pyproject.toml'}: [tool.pycov] precision must be an integer from 0 to 20\n"
    )
    result = python.pycov(["run"], tmp_path)
    assert result.returncode == 2
    assert "PROGRAM" in result.stderr
