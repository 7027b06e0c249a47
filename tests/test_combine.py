"""Parallel mode and `pycov combine`: concurrent runs write files of their
own, combine unions them (and removes what it merged), the reports include
pending parallel files, `[tool.pycov.paths]` maps data from elsewhere onto
the checkout, and bad inputs are named, kept and never lose data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pycov_testing import file_lines, parallel_files, write

PROGRAM = """\
    import sys


    def small(n):
        return n + 1


    def big(n):
        return n * 1000


    if sys.argv[1] == "small":
        print(small(1))
    else:
        print(big(1))
    """


def two_parallel_runs(python, where: Path) -> None:
    write(where / "prog.py", PROGRAM)
    for arg in ("small", "big"):
        result = python.pycov(["run", "-p", "prog.py", arg], where)
        assert result.returncode == 0, result.stderr


def test_parallel_runs_write_separate_files_that_combine_into_one(python, tmp_path):
    two_parallel_runs(python, tmp_path)
    files = parallel_files(tmp_path)
    assert len(files) == 2
    assert not (tmp_path / ".pycov").exists()
    # Reports include pending parallel files without changing them.
    assert file_lines(python.pycov_json(tmp_path), "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])
    assert parallel_files(tmp_path) == files

    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"Combined data file {f.name}" for f in files]
    assert parallel_files(tmp_path) == []
    assert file_lines(python.pycov_json(tmp_path), "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])


def test_combine_keep_append_and_explicit_inputs(python, tmp_path):
    two_parallel_runs(python, tmp_path)
    small, big = parallel_files(tmp_path)
    stash = tmp_path / "stash"
    stash.mkdir()
    shutil.move(big, stash / big.name)

    result = python.pycov(["combine", "--keep", "-q", small.name], tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert small.exists()
    executed, _ = file_lines(python.pycov_json(tmp_path, data_file=".pycov"), "prog.py")
    small.unlink()

    # -a adds the stashed directory's files to what is there.
    result = python.pycov(["combine", "-a", "stash"], tmp_path)
    assert result.returncode == 0, result.stderr
    both, missing = file_lines(python.pycov_json(tmp_path), "prog.py")
    assert missing == [] and set(executed) < set(both)
    assert list(stash.iterdir()) == []


def test_parallel_from_the_configuration(python, tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.pycov]\nparallel = true\n")
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    assert len(parallel_files(tmp_path)) == 1


def test_nothing_to_combine_is_an_error(python, tmp_path):
    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("pycov: no data to combine")
    result = python.pycov(["combine", "nowhere"], tmp_path)
    assert result.returncode == 1
    assert "nowhere" in result.stderr


def test_bad_inputs_are_named_and_kept_while_the_rest_combine(python, tmp_path):
    two_parallel_runs(python, tmp_path)
    good = parallel_files(tmp_path)
    data = good[0].read_bytes()
    write(tmp_path / ".pycov.x.1.truncated", "")
    (tmp_path / ".pycov.x.1.truncated").write_bytes(data[: len(data) // 2])
    future = bytearray(data)
    future[8:12] = (99).to_bytes(4, "little")
    (tmp_path / ".pycov.x.2.future").write_bytes(bytes(future))
    (tmp_path / ".pycov.x.3.text").write_text("not coverage data\n")

    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 1
    for name in (".pycov.x.1.truncated", ".pycov.x.2.future", ".pycov.x.3.text"):
        assert name in result.stderr, result.stderr
        assert (tmp_path / name).exists()
    assert "data format 99" in result.stderr
    assert all(not f.exists() for f in good)
    # Reports refuse the damaged pending files too, naming them...
    report = python.pycov(["report"], tmp_path)
    assert report.returncode == 1
    assert ".pycov.x.1.truncated is damaged" in report.stderr
    # ...and report the combined data once they are dealt with.
    for name in (".pycov.x.1.truncated", ".pycov.x.2.future", ".pycov.x.3.text"):
        (tmp_path / name).unlink()
    assert file_lines(python.pycov_json(tmp_path), "prog.py")[1] == []


def test_nothing_is_written_when_no_input_could_be_merged(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    before = (tmp_path / ".pycov").read_bytes()
    (tmp_path / ".pycov.x.1.text").write_text("junk")
    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 1
    assert ".pycov.x.1.text" in result.stderr
    assert (tmp_path / ".pycov").read_bytes() == before


def test_conflicting_statements_are_reported_not_merged(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "-p", "prog.py", "small"], tmp_path).returncode == 0
    write(tmp_path / "prog.py", PROGRAM + "    extra = 1\n")
    assert python.pycov(["run", "-p", "prog.py", "big"], tmp_path).returncode == 0
    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 1
    assert "prog.py was measured with other statements" in result.stderr
    # The file that was not fully merged stays for another try.
    assert len(parallel_files(tmp_path)) == 1


def test_paths_from_a_container_map_onto_the_checkout(python, tmp_path):
    container = tmp_path / "builds" / "x" / "project"
    write(container / "pkg" / "__init__.py", "")
    write(container / "pkg" / "mod.py", "def f():\n    return 1\n\n\nf()\n")
    write(container / "main.py", "import pkg.mod\n")
    assert python.pycov(["run", "-p", "main.py"], container).returncode == 0
    checkout = tmp_path / "checkout"
    shutil.copytree(container, checkout, ignore=shutil.ignore_patterns(".pycov*"))
    for data in parallel_files(container):
        shutil.move(data, checkout / data.name)

    # Without a rule the data still names the container's files.
    unmapped = python.pycov(["combine", "--keep"], checkout)
    assert unmapped.returncode == 0
    assert "builds/x/project/pkg/mod.py does not exist here" not in unmapped.stderr
    shutil.rmtree(container)
    unmapped = python.pycov(["combine", "--keep"], checkout)
    assert "pkg/mod.py does not exist here" in unmapped.stderr, unmapped.stderr

    write(checkout / "pyproject.toml", """\
        [tool.pycov.paths]
        source = [".", "*/builds/*/project"]
        """)
    result = python.pycov(["combine"], checkout)
    assert result.returncode == 0, result.stderr
    assert "does not exist here" not in result.stderr
    report = python.pycov_json(checkout)
    assert sorted(report["files"]) == ["main.py", "pkg/__init__.py", "pkg/mod.py"]
    assert file_lines(report, "pkg/mod.py") == ([1, 2, 5], [])


def test_bad_paths_configuration_is_an_error(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "-p", "prog.py", "small"], tmp_path).returncode == 0
    write(tmp_path / "pyproject.toml", '[tool.pycov.paths]\nsource = [".", "/ci/*"]\n')
    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 1
    assert "pyproject.toml: [tool.pycov.paths]" in result.stderr
    assert "must not end with a wildcard" in result.stderr
    assert len(parallel_files(tmp_path)) == 1


def test_another_tools_lcov_merges_with_pycov_data(python, tmp_path):
    """coverage.py's LCOV of one run and pycov's data of another: one report
    with the lines of both, pycov's statements, and the LCOV file kept."""
    write(tmp_path / "prog.py", PROGRAM)
    write(tmp_path / "other.py", "x = 1\nif x:\n    y = 2\n")
    assert python.pycov(["run", "-p", "prog.py", "small"], tmp_path).returncode == 0
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "prog.py", "big"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "-a", "other.py"], tmp_path)
    assert python.run(["-m", "coverage", "lcov", f"--rcfile={rc}", "-o", "big.lcov"], tmp_path).returncode == 0

    result = python.pycov(["combine", ".", "big.lcov"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Combined data file big.lcov" in result.stdout
    assert (tmp_path / "big.lcov").exists()
    report = python.pycov_json(tmp_path)
    assert file_lines(report, "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])
    # A file only the LCOV knows comes with the LCOV's statements.
    assert file_lines(report, "other.py") == ([1, 2, 3], [])


def test_reports_read_lcov_next_to_pycov_data(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    write(tmp_path / "extra.lcov", "SF:prog.py\nDA:9,1\nDA:15,1\nDA:16,1\nend_of_record\n")
    report = python.pycov(["json", "--data-file", ".pycov", "--data-file", "extra.lcov", "-o", "-"], tmp_path)
    assert report.returncode == 0, report.stderr
    entry = json.loads(report.stdout)["files"]["prog.py"]
    # Line 16 is no statement of pycov's: it does not count.
    assert (entry["executed_lines"], entry["missing_lines"]) == ([1, 4, 5, 8, 9, 12, 13, 15], [])


def test_bad_foreign_inputs_are_named_and_kept(python, tmp_path):
    two_parallel_runs(python, tmp_path)
    write(tmp_path / "huge.lcov", "SF:prog.py\nDA:4000000000,1\nend_of_record\n")
    (tmp_path / ".coverage").write_bytes(b"SQLite format 3\x00" + bytes(100))
    write(tmp_path / "entity.xml", """\
        <?xml version="1.0"?>
        <!DOCTYPE coverage [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
        <coverage><sources><source>&b;</source></sources></coverage>
        """)
    write(tmp_path / "random.bin", "\x00\x01 nothing\n")
    result = python.pycov(["combine", ".", "huge.lcov", ".coverage", "entity.xml", "random.bin"], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("huge.lcov: line 2: DA line number \"4000000000\"" in line for line in lines), result.stderr
    assert any(".coverage: not readable as coverage.py data: " in line for line in lines), result.stderr
    assert any("entity.xml: line 2: a DOCTYPE with an internal subset" in line for line in lines), result.stderr
    assert any("random.bin is not a pycov data file, an LCOV tracefile or Cobertura XML" in line
               for line in lines), result.stderr
    for name in ("huge.lcov", ".coverage", "entity.xml", "random.bin"):
        assert (tmp_path / name).exists()
    assert parallel_files(tmp_path) == []
    assert file_lines(python.pycov_json(tmp_path), "prog.py")[1] == []


def test_reports_flag_sources_changed_after_measuring(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    fresh = python.pycov(["report"], tmp_path)
    assert (fresh.returncode, fresh.stderr) == (0, "")
    with (tmp_path / "prog.py").open("a") as source:
        source.write("extra = 1\n")
    stale = python.pycov(["report"], tmp_path)
    assert stale.returncode == 0
    assert stale.stderr == "pycov: warning: prog.py changed after it was measured; its lines may be wrong\n"
    assert stale.stdout == fresh.stdout


def test_cobertura_from_coverage_py_merges_with_pycov_data(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "-p", "prog.py", "small"], tmp_path).returncode == 0
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    assert python.run(["-m", "coverage", "run", f"--rcfile={rc}", "prog.py", "big"], tmp_path).returncode == 0
    assert python.run(["-m", "coverage", "xml", f"--rcfile={rc}", "-o", "big.xml"], tmp_path).returncode == 0
    result = python.pycov(["combine", ".", "big.xml"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "big.xml").exists()
    assert file_lines(python.pycov_json(tmp_path), "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])


def test_pycov_reports_read_back_as_the_same_coverage(python, tmp_path):
    """LCOV and Cobertura written by pycov, read back by pycov, give the
    data they were written from."""
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    original = python.pycov_json(tmp_path)["files"]
    for kind in ("lcov", "xml"):
        assert python.pycov([kind, "-o", f"out.{kind}"], tmp_path).returncode == 0
        back = python.pycov(["json", "--data-file", f"out.{kind}", "-o", "-"], tmp_path)
        assert back.returncode == 0, back.stderr
        files = json.loads(back.stdout)["files"]
        assert {name: file_lines({"files": files}, name) for name in files} == \
            {name: file_lines({"files": original}, name) for name in original}, kind


def test_one_file_under_two_spellings_counts_once(python, tmp_path):
    """A module run through a symlinked directory and through its real one
    is one file in the data, with the lines of both."""
    import os

    write(tmp_path / "real" / "mod.py", """\
        import sys


        def first():
            return 1


        def second():
            return 2


        if sys.argv[-1] == "first":
            first()
        else:
            second()
        """)
    os.symlink(tmp_path / "real", tmp_path / "link")
    write(tmp_path / "main.py", """\
        import runpy, sys
        sys.argv.append("first")
        runpy.run_path("real/mod.py")
        sys.argv.append("second")
        runpy.run_path("./link/../link/mod.py")
        """)
    assert python.pycov(["run", "main.py"], tmp_path).returncode == 0
    report = python.pycov_json(tmp_path)
    assert sorted(report["files"]) == ["main.py", "real/mod.py"]
    assert file_lines(report, "real/mod.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])


def test_coverage_py_data_adds_its_lines_to_pycov_data(python, tmp_path):
    """coverage.py's .coverage (line and branch data) adds what ran to the
    files pycov measured; files only it measured are named and left out."""
    write(tmp_path / "prog.py", PROGRAM)
    write(tmp_path / "only_theirs.py", "x = 1\n")
    assert python.pycov(["run", "-p", "prog.py", "small"], tmp_path).returncode == 0
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    for branch, name in (([], "lines.cov"), (["--branch"], "arcs.cov")):
        ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", *branch, f"--data-file={name}",
                          "prog.py", "big"], tmp_path)
        assert ran.returncode == 0, ran.stderr
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "-a", "--data-file=lines.cov", "only_theirs.py"],
                     tmp_path)
    assert ran.returncode == 0, ran.stderr
    for name in ("lines.cov", "arcs.cov"):
        result = python.pycov(["combine", "--keep", ".", name], tmp_path)
        assert result.returncode == 0, result.stderr
        assert file_lines(python.pycov_json(tmp_path), "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], []), name
        assert (tmp_path / name).exists()
    # A file only coverage.py measured gets its statements from its source,
    # analysed as `pycov run` would; one whose source is gone is named.
    write(tmp_path / "gone.py", "y = 2\n")
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "-a", "--data-file=lines.cov", "gone.py"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "gone.py").unlink()
    result = python.pycov(["combine", "--keep", ".", "lines.cov"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lines.cov: 1 file(s) only coverage.py measured are left out, as their sources are not here" in result.stderr
    assert "gone.py" in result.stderr
    report = python.pycov_json(tmp_path)
    assert file_lines(report, "only_theirs.py") == ([1], [])
    assert "gone.py" not in report["files"]


def test_coverage_py_data_alone_becomes_pycov_data(python, tmp_path):
    # Statements computed from the sources: the same data as pycov's own
    # measurement of the same run.
    write(tmp_path / "prog.py", PROGRAM)
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    assert python.run(["-m", "coverage", "run", f"--rcfile={rc}", "prog.py", "big"], tmp_path).returncode == 0
    assert python.pycov(["run", "--data-file", "ours", "prog.py", "big"], tmp_path).returncode == 0
    result = python.pycov(["combine", ".coverage"], tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / ".coverage").exists()
    converted = python.pycov_json(tmp_path)
    assert converted["files"] == python.pycov_json(tmp_path, "ours")["files"]
    assert file_lines(converted, "prog.py") == ([1, 4, 8, 9, 12, 15], [5, 13])


def test_coverage_py_data_of_sources_not_here_leaves_the_data_file_alone(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    assert python.pycov(["run", "prog.py", "small"], tmp_path).returncode == 0
    before = (tmp_path / ".pycov").read_bytes()
    write(tmp_path / "elsewhere" / "other.py", "z = 3\n")
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "other.py"], tmp_path / "elsewhere")
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "elsewhere" / "other.py").unlink()
    result = python.pycov(["combine", "elsewhere/.coverage"], tmp_path)
    assert result.returncode == 1
    assert "their sources are not here" in result.stderr
    assert "no data to combine" in result.stderr
    assert (tmp_path / ".pycov").read_bytes() == before


def test_inputs_named_twice_or_as_the_output_merge_once(python, tmp_path):
    two_parallel_runs(python, tmp_path)
    (tmp_path / "sub").mkdir()
    result = python.pycov(["combine", ".", "./", "sub/.."], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert parallel_files(tmp_path) == []
    # The data file itself, spelled another way, is not an input to delete.
    result = python.pycov(["combine", "sub/../.pycov"], tmp_path)
    assert result.returncode == 1
    assert (tmp_path / ".pycov").exists()
    assert file_lines(python.pycov_json(tmp_path), "prog.py")[1] == []


def test_relative_files_report_and_combine_in_another_checkout(python, tmp_path):
    here = tmp_path / "ci" / "project"
    write(here / "prog.py", PROGRAM)
    result = python.pycov(["run", "-p", "--relative-files", "prog.py", "small"], here)
    assert result.returncode == 0, result.stderr
    # The data says nothing of where it was measured.
    (measured,) = parallel_files(here)
    assert str(tmp_path).encode() not in measured.read_bytes()

    there = tmp_path / "home" / "checkout"
    shutil.copytree(here, there)
    shutil.rmtree(here)
    write(there / "pyproject.toml", "[tool.pycov]\nrelative_files = true\n")
    result = python.pycov(["run", "-p", "prog.py", "big"], there)
    assert result.returncode == 0, result.stderr
    result = python.pycov(["combine", "-q"], there)
    assert (result.returncode, result.stderr) == (0, "")
    assert file_lines(python.pycov_json(there), "prog.py") == ([1, 4, 5, 8, 9, 12, 13, 15], [])
    assert str(tmp_path).encode() not in (there / ".pycov").read_bytes()

    # The combined file moves on as well; without relative_files the same
    # data would name a file that is not here.
    third = tmp_path / "third"
    shutil.copytree(there, third)
    shutil.rmtree(there)
    result = python.pycov(["report"], third)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[2].split() == ["prog.py", "8", "0", "100%"]


MULTILINE = """\
    import sys


    def check(n):
        if (
            n > 1
            and n < 10
        ):
            return "small"
        return "other"


    print(check(int(sys.argv[1])))
    """


def test_coverage_py_lines_of_multi_line_statements_count(python, tmp_path):
    # coverage.py stores the lines its tracer saw (here 6, inside the `if`),
    # not the statements they belong to: they are translated, as coverage.py's
    # own reports do, whether pycov data knows the file or not.
    write(tmp_path / "multi.py", MULTILINE)
    rc = tmp_path / "empty.rc"
    rc.write_text("")
    ran = python.run(["-m", "coverage", "run", f"--rcfile={rc}", "multi.py", "5"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    for arg, data in (("5", "ours-5"), ("50", "ours-both")):
        assert python.pycov(["run", "--data-file", data, "multi.py", arg], tmp_path).returncode == 0
    result = python.pycov(["combine", "--keep", ".coverage"], tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert python.pycov_json(tmp_path)["files"] == python.pycov_json(tmp_path, "ours-5")["files"]

    assert python.pycov(["run", "-p", "multi.py", "50"], tmp_path).returncode == 0
    result = python.pycov(["combine", "--keep", ".", ".coverage"], tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert python.pycov(["combine", "-a", "--data-file", "ours-both", "ours-5"], tmp_path).returncode == 0
    assert file_lines(python.pycov_json(tmp_path), "multi.py") == ([1, 4, 5, 9, 10, 13], [])
    assert python.pycov_json(tmp_path)["files"] == python.pycov_json(tmp_path, "ours-both")["files"]
