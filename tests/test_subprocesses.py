"""`pycov run --subprocesses`: Python processes the program starts
(`subprocess`, `multiprocessing` with every start method, pytest-xdist
workers, forks, processes ending by `os._exit`) are measured as the run is,
and their data ends in the run's data file."""

from __future__ import annotations

import os
import shutil

import pytest

from pycov_testing import file_lines, parallel_files, same_result, write

FAMILY = """\
    import multiprocessing
    import os
    import subprocess
    import sys


    def work(n):
        return n * 2


    def child(how):
        print("child", how)
        if how == "exit":
            os._exit(0)


    if __name__ == "__main__":
        if len(sys.argv) > 1:
            child(sys.argv[1])
        else:
            subprocess.run([sys.executable, "family.py", "plain"], check=True)
            subprocess.run([sys.executable, "family.py", "exit"], check=True)
            for method in ("fork", "spawn", "forkserver"):
                pool = multiprocessing.get_context(method).Pool(2)
                print(method, pool.map(work, [1, 2]))
                pool.close()
                pool.join()
    """

# Lines only the children run: `work`'s body, `child` and its call.
CHILD_ONLY = [8, 12, 13, 14, 19]
ALL_LINES = [1, 2, 3, 4, 7, 8, 11, 12, 13, 14, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27]


def test_children_are_measured_into_the_runs_data_file(python, tmp_path):
    write(tmp_path / "family.py", FAMILY)
    plain = python.run(["family.py"], tmp_path)
    measured = python.pycov(["run", "--subprocesses", "family.py"], tmp_path)
    same_result(plain, measured)
    assert file_lines(python.pycov_json(tmp_path), "family.py") == (ALL_LINES, [])
    # The children's files were absorbed into `.pycov`.
    assert parallel_files(tmp_path) == []

    (tmp_path / ".pycov").unlink()
    measured = python.pycov(["run", "family.py"], tmp_path)
    same_result(plain, measured)
    executed = [n for n in ALL_LINES if n not in CHILD_ONLY]
    assert file_lines(python.pycov_json(tmp_path), "family.py") == (executed, CHILD_ONLY)
    assert parallel_files(tmp_path) == []


def test_parallel_mode_children_join_the_parallel_file(python, tmp_path):
    write(tmp_path / "family.py", FAMILY)
    write(tmp_path / "pyproject.toml", "[tool.pycov]\nparallel = true\nsubprocesses = true\n")
    result = python.pycov(["run", "family.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".pycov").exists()
    assert len(parallel_files(tmp_path)) == 1
    result = python.pycov(["combine"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert file_lines(python.pycov_json(tmp_path), "family.py") == (ALL_LINES, [])


def test_children_measure_what_the_run_measures_wherever_they_start(python, tmp_path):
    # The selection is the run's: relative to its directory, with its
    # --omit, even for a child started elsewhere.
    write(
        tmp_path / "main.py",
        """
        import os, subprocess, sys, tempfile
        for name in ("tool.py", "skipped_tool.py"):
            subprocess.run([sys.executable, os.path.abspath(name)], cwd=tempfile.gettempdir(), check=True)
        """,
    )
    write(tmp_path / "tool.py", "import os\nprint('tool', os.getcwd() != '')\n")
    write(tmp_path / "skipped_tool.py", "print('skipped')\n")
    result = python.pycov(["run", "--subprocesses", "--omit", "skipped*", "main.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "tool True\nskipped\n", "")
    report = python.pycov_json(tmp_path)
    assert sorted(report["files"]) == ["main.py", "tool.py"]
    assert file_lines(report, "tool.py") == ([1, 2], [])


def test_isolated_children_are_measured_and_children_without_site_are_not(python, tmp_path):
    # `-I` still processes site-packages' .pth files (and keeps variables
    # that are not PYTHON*), `-S` skips them: as documented in the README.
    write(
        tmp_path / "main.py",
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-I", "isolated.py"], check=True)
        subprocess.run([sys.executable, "-S", "no_site.py"], check=True)
        """,
    )
    write(tmp_path / "isolated.py", "print('isolated')\n")
    write(tmp_path / "no_site.py", "print('no site')\n")
    result = python.pycov(["run", "--subprocesses", "main.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "isolated\nno site\n", "")
    report = python.pycov_json(tmp_path)
    assert sorted(report["files"]) == ["isolated.py", "main.py"]
    assert file_lines(report, "isolated.py") == ([1], [])


def test_a_pycov_run_inside_a_measured_program_keeps_its_own_options(python, tmp_path):
    # The inner run does not measure subprocesses: its child is measured by
    # neither run.
    write(
        tmp_path / "outer.py",
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-m", "pycov", "run", "--data-file", "inner-data", "inner.py"], check=True)
        """,
    )
    write(
        tmp_path / "inner.py",
        """
        import subprocess, sys
        def f():
            return 1
        print(f())
        subprocess.run([sys.executable, "grandchild.py"], check=True)
        """,
    )
    write(tmp_path / "grandchild.py", "print('grandchild')\n")
    result = python.pycov(["run", "--subprocesses", "outer.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\ngrandchild\n", "")
    assert file_lines(python.pycov_json(tmp_path, "inner-data"), "inner.py") == ([1, 2, 3, 4, 5], [])
    assert sorted(python.pycov_json(tmp_path, "inner-data")["files"]) == ["inner.py"]
    assert sorted(python.pycov_json(tmp_path)["files"]) == ["outer.py"]
    assert parallel_files(tmp_path) == []


def test_a_child_that_measured_another_version_of_a_file_is_set_aside(python, tmp_path):
    write(tmp_path / "mod.py", "a = 1\n")
    write(
        tmp_path / "main.py",
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "import mod"], check=True)
        with open("mod.py", "w") as f:
            f.write("a = 1\\nb = 2\\n")
        import mod
        """,
    )
    result = python.pycov(["run", "--subprocesses", "main.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mod.py was measured with other statements than in this run" in result.stderr
    assert parallel_files(tmp_path) == []
    (kept,) = tmp_path.glob(".pycov-conflict.*")
    assert kept.name.startswith(".pycov-conflict.")
    # Reports of the run are not blocked by it; it reports on its own.
    assert file_lines(python.pycov_json(tmp_path), "mod.py") == ([1, 2], [])
    assert file_lines(python.pycov_json(tmp_path, kept.name), "mod.py") == ([1], [])


def test_terminating_a_pool_never_waits_for_its_workers(python, tmp_path):
    # `Pool.terminate()` (as `with Pool()` ends) sends SIGTERM to workers
    # that may be just starting or blocked on a lock the pool holds: they
    # die of it at once, as without pycov (and, like coverage.py, without
    # saving: close() and join() a pool to keep its workers' lines).
    write(
        tmp_path / "pools.py",
        """
        import multiprocessing, sys
        if __name__ == "__main__":
            for method in sys.argv[1:]:
                context = multiprocessing.get_context(method)
                for _ in range(60 if method == "fork" else 3):
                    with context.Pool(2) as pool:
                        pass
            print("done")
        """,
    )
    for flags in ([], ["--subprocesses"]):
        result = python.pycov(["run", *flags, "pools.py", "fork", "spawn", "forkserver"], tmp_path, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")


def test_a_forked_child_still_dies_of_sigterm(python, tmp_path):
    # pycov's SIGTERM handler, inherited by a fork, must not keep the child alive.
    write(
        tmp_path / "forks.py",
        """
        import os, signal, time
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(3)
        time.sleep(0.3)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print(os.WIFSIGNALED(status) and os.WTERMSIG(status))
        """,
    )
    plain = python.run(["forks.py"], tmp_path)
    assert plain.stdout == "15\n"
    for flags in ([], ["--subprocesses"]):
        same_result(plain, python.pycov(["run", *flags, "forks.py"], tmp_path))


XDIST_TESTS = """\
    from mod import double, triple


    def test_double():
        assert double(2) == 4


    def test_triple():
        assert triple(2) == 6
    """


def test_pytest_xdist_workers_are_measured(python, tmp_path):
    write(tmp_path / "mod.py", "def double(n):\n    return n * 2\n\n\ndef triple(n):\n    return n * 3\n")
    write(tmp_path / "test_mod.py", XDIST_TESTS)
    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "test_mod.py"]
    # The controller imports none of it: --source reports it anyway.
    result = python.pycov(["run", "--source", ".", *pytest_args], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pytest-xdist ran the tests in worker processes, which were not measured" in result.stderr
    assert file_lines(python.pycov_json(tmp_path), "mod.py") == ([], [1, 2, 5, 6])

    result = python.pycov(["run", "--source", ".", "--subprocesses", *pytest_args], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pycov" not in result.stderr
    assert file_lines(python.pycov_json(tmp_path), "mod.py") == ([1, 2, 5, 6], [])
    assert file_lines(python.pycov_json(tmp_path), "test_mod.py") == ([1, 4, 5, 8, 9], [])


TOOLZ = os.environ.get("PYCOV_TEST_TOOLZ")
TOOLZ_PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                "toolz"]


def executed_by_file(report: dict) -> dict[str, list[int]]:
    return {name: entry["executed_lines"] for name, entry in report["files"].items()}


@pytest.mark.skipif(not TOOLZ, reason="PYCOV_TEST_TOOLZ (the unpacked toolz 1.2.0 sdist) is not set; .ci/run sets it")
def test_toolz_under_xdist_combines_to_the_single_process_result(python, tmp_path):
    suite = tmp_path / "toolz"
    shutil.copytree(TOOLZ, suite, ignore=shutil.ignore_patterns(".pycov*", "__pycache__"))
    env = python.env(PYTHONPATH=".")
    single = python.pycov(["run", "--source", ".", *TOOLZ_PYTEST], suite, env=env, timeout=600)
    assert single.returncode == 0, single.stdout + single.stderr
    expected = executed_by_file(python.pycov_json(suite))
    (suite / ".pycov").unlink()

    for _ in range(2):  # two parallel runs, as two CI jobs would leave
        distributed = python.pycov(["run", "-p", "--subprocesses", "--source", ".", *TOOLZ_PYTEST, "-n", "2"], suite,
                                   env=env, timeout=600)
        assert distributed.returncode == 0, distributed.stdout + distributed.stderr
    assert len(parallel_files(suite)) == 2
    result = python.pycov(["combine"], suite)
    assert result.returncode == 0, result.stderr
    assert parallel_files(suite) == []
    combined = executed_by_file(python.pycov_json(suite))
    assert len(combined) == len(expected) > 30
    assert sum(map(len, combined.values())) > 2500
    assert combined == expected
