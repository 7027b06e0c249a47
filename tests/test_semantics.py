"""`pycov run` behaves as `python` would: same exit status, same output,
same tracebacks, same `sys.argv`, `__main__`, `sys.path[0]`; and the data
is saved however the program ends."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import compare_with_coverage
from pycov_testing import file_lines, same_result, write


def compare(python, tmp_path, script_text, args=(), name="prog.py", stdin=None):
    """Runs a script plainly and under pycov; returns both results."""
    write(tmp_path / name, script_text)
    plain = python.run([name, *args], tmp_path, input=stdin)
    measured = python.pycov(["run", "--data-file", "data.pycov", name, *args], tmp_path, input=stdin)
    return plain, measured


def test_normal_exit_and_output_streams(python, tmp_path):
    plain, measured = compare(
        python,
        tmp_path,
        """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.stdout.write("no newline")
        """,
    )
    same_result(plain, measured)
    assert measured.returncode == 0
    assert file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py") == ([1, 2, 3, 4], [])


@pytest.mark.parametrize(
    "exit_call",
    ["sys.exit(3)", "sys.exit('fatal: message')", "sys.exit()", "sys.exit(None)", "sys.exit(True)",
     "sys.exit(256 + 7)", "sys.exit(-1)", "raise SystemExit(['a', 1])", "sys.exit(3.5)"],
)
def test_system_exit(python, tmp_path, exit_call):
    plain, measured = compare(python, tmp_path, f"import sys\nprint('before')\n{exit_call}\nprint('after')\n")
    same_result(plain, measured)
    executed, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    # After a `raise`, line 4 is dead code the compiler drops: not a statement.
    assert (executed, missing) == ([1, 2, 3], [] if exit_call.startswith("raise") else [4])


def test_uncaught_exception_traceback_is_pythons(python, tmp_path):
    plain, measured = compare(
        python,
        tmp_path,
        """
        def inner(x):
            return 1 / x

        def outer():
            return inner(0)

        outer()
        """,
    )
    same_result(plain, measured)
    assert measured.returncode == 1
    assert "pycov" not in measured.stderr
    assert "ZeroDivisionError" in measured.stderr
    assert file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py") == ([1, 2, 4, 5, 7], [])


def test_argv_file_path_and_main_module(python, tmp_path):
    plain, measured = compare(
        python,
        tmp_path,
        """
        import pickle, sys

        class Point:
            pass

        names = sorted(k for k in globals() if k.startswith("__"))
        print(names)
        print(sys.argv)
        print(__file__, __name__, __spec__, __cached__, type(__loader__).__name__)
        print(sys.path[0])
        print(sys.modules["__main__"].__dict__ is globals())
        print(type(pickle.loads(pickle.dumps(Point()))).__module__)
        print(input())
        """,
        args=["--flag", "value", "-m", "x y"],
        name="sub/prog.py",
        stdin="typed line\n",
    )
    same_result(plain, measured)
    assert "typed line" in measured.stdout


def test_symlinked_script_dir_goes_first_on_sys_path(python, tmp_path):
    write(tmp_path / "real/prog.py", "import sys\nprint(sys.path[0], __file__, sys.argv[0])\n")
    (tmp_path / "links").mkdir()
    os.symlink(tmp_path / "real/prog.py", tmp_path / "links/prog.py")
    plain = python.run(["links/prog.py"], tmp_path)
    measured = python.pycov(["run", "--data-file", "d", "links/prog.py"], tmp_path)
    same_result(plain, measured)


def test_module_mode(python, tmp_path):
    write(tmp_path / "pkg/__init__.py", "VALUE = 1\n")
    write(
        tmp_path / "pkg/__main__.py",
        """
        import sys
        from pkg import VALUE
        print(sys.argv, __name__, __spec__.name, __file__, sys.path[0] == __import__('os').getcwd())
        print(sorted(k for k in globals() if k.startswith("__")))
        if "--fail" in sys.argv:
            raise ValueError("failing on purpose")
        """,
    )
    write(tmp_path / "pkg/tool.py", "import sys\nprint('tool', sys.argv[1:])\n")
    for args in (["-m", "pkg", "a", "-b"], ["-m", "pkg.tool", "x"], ["-m", "pkg", "--fail"]):
        plain = python.run(args, tmp_path)
        measured = python.pycov(["run", "--data-file", "d", *args], tmp_path)
        same_result(plain, measured)
    report = python.pycov_json(tmp_path, "d")
    assert sorted(report["files"]) == ["pkg/__init__.py", "pkg/__main__.py"]
    executed, missing = file_lines(report, "pkg/__main__.py")
    assert (executed, missing) == ([1, 2, 3, 4, 5, 6], [])


def test_console_script_entry_point(python, tmp_path):
    write(tmp_path / "prog.py", "print('hello')\n")
    script = os.path.join(os.path.dirname(python.executable), "pycov")
    result = subprocess.run([script, "run", "prog.py"], cwd=tmp_path, capture_output=True, text=True,
                            env=python.env())
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")
    assert (tmp_path / ".pycov").exists()


def test_threads_are_measured(python, tmp_path):
    plain, measured = compare(
        python,
        tmp_path,
        """
        import threading

        results = []

        def work(n):
            total = 0
            for i in range(n):
                total += i
            results.append(total)

        threads = [threading.Thread(target=work, args=(n,)) for n in (10, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(sorted(results))
        """,
    )
    same_result(plain, measured)
    executed, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    assert missing == []
    assert {6, 7, 8, 9}.issubset(executed)


def test_program_that_saves_and_restores_the_trace_function(python, tmp_path):
    # doctest (and debuggers) save sys.gettrace() and restore it later; on
    # 3.11 that must put pycov's tracer back, not remove it.
    plain, measured = compare(
        python,
        tmp_path,
        """
        import doctest, sys

        def double(x):
            \"\"\"
            >>> double(2)
            4
            \"\"\"
            return x * 2

        doctest.testmod(verbose=False)
        saved = sys.gettrace()
        sys.settrace(saved)

        def after():
            value = double(3)
            return value

        print(after())
        """,
    )
    same_result(plain, measured)
    executed, _ = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    assert {8, 15, 16} <= set(executed)
    result = compare_with_coverage.compare("restore", python.executable, tmp_path, ".", ["prog.py"])
    assert result.differences == []


def test_non_daemon_threads_and_atexit_run_before_saving(python, tmp_path):
    plain, measured = compare(
        python,
        tmp_path,
        """
        import atexit, threading, time

        def late():
            time.sleep(0.2)
            print("thread finished")

        def goodbye():
            print("atexit handler")

        atexit.register(goodbye)
        threading.Thread(target=late).start()
        print("main done")
        """,
    )
    same_result(plain, measured)
    executed, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    assert missing == []
    assert {4, 5, 8} <= set(executed)


def test_keyboard_interrupt_ends_by_sigint(python, tmp_path):
    plain, measured = compare(python, tmp_path, "print('working')\nraise KeyboardInterrupt\n")
    same_result(plain, measured)
    assert measured.returncode == -signal.SIGINT
    assert file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py") == ([1, 2], [])


def test_sigterm_saves_the_data(python, tmp_path):
    write(
        tmp_path / "server.py",
        """
        import sys, time
        counter = 0
        print("ready", flush=True)
        time.sleep(60)
        counter += 1
        """,
    )
    results = []
    for command in (["server.py"], ["-m", "pycov", "run", "--data-file", "d", "server.py"]):
        process = subprocess.Popen([python.executable, *command], cwd=tmp_path, env=python.env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        results.append((process.returncode, stdout, stderr))
    assert results[1] == results[0]
    assert results[0][0] == -signal.SIGTERM
    assert file_lines(python.pycov_json(tmp_path, "d"), "server.py") == ([1, 2, 3, 4], [5])


def test_program_installing_its_own_sigterm_handler(python, tmp_path):
    write(
        tmp_path / "graceful.py",
        """
        import signal, sys, time
        def stop(signum, frame):
            print("stopping")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    process = subprocess.Popen([python.executable, "-m", "pycov", "run", "--data-file", "d", "graceful.py"],
                               cwd=tmp_path, env=python.env(), stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    assert (process.returncode, stdout) == (0, "stopping\n")
    assert file_lines(python.pycov_json(tmp_path, "d"), "graceful.py") == ([1, 2, 3, 4, 5, 6, 7], [])


def test_forked_child_does_not_overwrite_the_parents_data(python, tmp_path):
    # The parent exits first; the child saves nothing when it exits later,
    # so the data is the parent's, not a child's snapshot written over it.
    write(
        tmp_path / "forks.py",
        """
        import os, sys, time
        if os.fork() == 0:
            time.sleep(0.5)
            open("child-done", "w").close()
            sys.exit(0)
        print("parent")
        """,
    )
    result = python.pycov(["run", "--data-file", "d", "forks.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "parent\n", "")
    deadline = time.monotonic() + 30
    while not (tmp_path / "child-done").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert file_lines(python.pycov_json(tmp_path, "d"), "forks.py") == ([1, 2, 6], [3, 4, 5])


def test_a_venv_inside_the_project_is_not_measured(python, tmp_path):
    # The usual layout: `.venv/` in the project; its packages are installed
    # code, never the project's.
    subprocess.run([python.executable, "-m", "venv", "--without-pip", tmp_path / ".venv"], check=True)
    site_packages = python.run(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                               env=python.env()).stdout.strip()
    venv_python = tmp_path / ".venv/bin/python"
    venv_site = subprocess.run([venv_python, "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    write(Path(venv_site) / "installed_lib.py", "def helper():\n    return 42\n")
    write(tmp_path / "app.py", "import installed_lib\nprint(installed_lib.helper())\n")
    # pycov itself comes from the outer environment.
    env = python.env(PYTHONPATH=site_packages)
    result = subprocess.run([venv_python, "-m", "pycov", "run", "app.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "42\n", "")
    assert sorted(python.pycov_json(tmp_path)["files"]) == ["app.py"]


def test_directory_and_zip_archive_programs(python, tmp_path):
    write(tmp_path / "appdir/__main__.py", "import sys\nprint(sys.argv, sys.path[0], __name__, __spec__.name)\n")
    import zipfile
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.writestr("__main__.py", "import sys\nprint('zipped', sys.argv)\n")
    (tmp_path / "empty_dir").mkdir()
    for index, target in enumerate((["appdir", "a"], ["./appdir/", "b"], ["app.zip", "c"], ["empty_dir"])):
        plain = python.run(target, tmp_path)
        measured = python.pycov(["run", "--data-file", f"d{index}", *target], tmp_path)
        if target == ["empty_dir"]:
            assert (plain.returncode, measured.returncode) == (1, 1)
            assert measured.stderr == f"pycov: can't find '__main__' module in '{tmp_path / 'empty_dir'}'\n"
        elif target[0] == "app.zip":
            # Code inside an archive has no file of its own to measure.
            assert (measured.returncode, measured.stdout) == (plain.returncode, plain.stdout)
            assert measured.stderr == "pycov: warning: no data was collected\n"
        else:
            same_result(plain, measured)
    assert file_lines(python.pycov_json(tmp_path, "d0"), "appdir/__main__.py") == ([1, 2], [])


def test_arguments_that_are_not_utf8(python, tmp_path):
    write(tmp_path / "prog.py", "import os, sys\nprint([os.fsencode(a) for a in sys.argv[1:]])\n")
    raw = b"caf\xe9-\xff"
    plain = subprocess.run([python.executable, b"prog.py", raw], cwd=tmp_path, capture_output=True, env=python.env())
    measured = subprocess.run([python.executable, "-m", "pycov", "run", b"prog.py", raw], cwd=tmp_path,
                              capture_output=True, env=python.env())
    assert (measured.returncode, measured.stdout, measured.stderr) == (0, plain.stdout, b"")
    assert repr(raw).encode() in measured.stdout


def test_exit_status_beyond_a_c_long(python, tmp_path):
    plain, measured = compare(python, tmp_path, "import sys\nsys.exit(2 ** 64)\n")
    # (3.12 and 3.13 also print an OverflowError of their own exit handling.)
    assert (measured.returncode, measured.stdout) == (plain.returncode, plain.stdout) == (255, "")


def test_program_handler_chaining_to_the_previous_one(python, tmp_path):
    # A graceful-shutdown handler that calls "the previous handler" when it is
    # callable: without pycov that was SIG_DFL (not callable).
    write(
        tmp_path / "chain.py",
        """
        import signal, sys, time
        previous = signal.getsignal(signal.SIGTERM)
        def stop(signum, frame):
            if callable(previous):
                previous(signum, frame)
            print("graceful", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    outcomes = []
    for command in (["chain.py"], ["-m", "pycov", "run", "--data-file", "d", "chain.py"]):
        process = subprocess.Popen([python.executable, *command], cwd=tmp_path, env=python.env(),
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
        outcomes.append((process.returncode, stdout))
    assert outcomes[1] == outcomes[0] == (3, "graceful\n")
    executed, _ = file_lines(python.pycov_json(tmp_path, "d"), "chain.py")
    assert {4, 5, 7, 8} <= set(executed)


def test_nothing_runs_or_prints_after_the_program(python, tmp_path):
    # A lazily imported module must not be executed by pycov's bookkeeping,
    # and compiling sources at the end must not print their SyntaxWarnings.
    write(tmp_path / "lazy_target.py", "print('lazy module executed')\n")
    write(tmp_path / "warns.py", "PATTERN = '\\\\d+'\nBAD = '\\d'\n")
    write(
        tmp_path / "prog.py",
        """
        import importlib.util, sys
        spec = importlib.util.find_spec("lazy_target")
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["lazy_target"] = module
        loader.exec_module(module)
        print("done")
        """,
    )
    result = python.pycov(["run", "--source", ".", "prog.py"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
    assert "warns.py" in python.pycov_json(tmp_path)["files"]
