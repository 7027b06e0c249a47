"""Python 3.12/3.13: pycov takes line instrumentation off running code once
the line is recorded (crates/pycov-runner/src/tidy.rs). A loop inside one
line (a comprehension, `and`/`or`) otherwise stays instrumented for good.
Lines that run only later must still be measured, and a tool that starts
later must still see every line."""

from __future__ import annotations

from pycov_testing import file_lines, write

PENDING = """
import dis, sys, time

MONITORING = sys.version_info >= (3, 12)


def pending(function):
    # Lines (from the def) whose line starts still report.
    first = function.__code__.co_firstlineno
    return sorted({
        i.positions.lineno - first
        for i in dis.get_instructions(function, adaptive=True)
        if i.opname == "INSTRUMENTED_LINE"
    })

"""

PROGRAM = PENDING + """

def hot(data, late):
    total = sum([x * 2 for x in data if x & 1 and x > 0])
    if late:
        total += sum([x for x in data if x > 2 or x < -3])
    return total


def run_until(late, done):
    # Until pycov tidied hot (3.12+), or for a moment.
    deadline = time.monotonic() + (20 if MONITORING else 0.05)
    while True:
        for _ in range(100):
            hot(DATA, late)
        if done() or time.monotonic() > deadline:
            break


DATA = list(range(-5, 40))
hot(DATA, False)
print("first", pending(hot))
run_until(False, lambda: 1 not in pending(hot))
print("early", pending(hot))
# The lines under `if late:` run for the first time now.
run_until(True, lambda: 3 not in pending(hot))
print("late", pending(hot))

if MONITORING:
    # A tool starting on tidied code sees every line it runs.
    mon = sys.monitoring
    seen = set()
    mon.use_tool_id(4, "other")
    mon.register_callback(4, mon.events.LINE, lambda code, line: seen.add(line - code.co_firstlineno))
    mon.set_local_events(4, hot.__code__, mon.events.LINE)
    hot(DATA, True)
    mon.set_local_events(4, hot.__code__, 0)
    mon.free_tool_id(4)
    print("other tool saw", sorted(seen))
    # Adding that tool armed pycov's line starts again on every line of hot
    # (CPython does that): a later pass takes them off again.
    run_until(True, lambda: pending(hot) == [])
    print("again", pending(hot))
print(hot(DATA, True))
"""


def test_line_starts_of_recorded_lines_stop_reporting(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    result = python.pycov(["run", "--data-file", "data.pycov", "prog.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    executed, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    lines = result.stdout.splitlines()
    if python.info >= (3, 12):
        assert missing == []
        # Line 1 of hot loops within itself: its jump targets never report,
        # so only pycov's pass takes them off.
        assert lines[0].startswith("first [1,"), lines[0]
        assert lines[1] == "early [3]", lines[1]
        assert lines[2] == "late []", lines[2]
        assert lines[3] == "other tool saw [1, 2, 3, 4]", lines[3]
        assert lines[4] == "again []", lines[4]
    else:
        # 3.11 has no sys.monitoring (a trace function instead).
        assert lines[:3] == ["first []", "early []", "late []"]
        program = PROGRAM.removeprefix("\n").splitlines()
        block = program.index("if MONITORING:") + 1
        assert missing and set(missing) <= set(range(block + 1, program.index("print(hot(DATA, True))") + 1))
    # hot's lines, `total += ...` only after the first passes.
    first = PROGRAM.removeprefix("\n").splitlines().index("def hot(data, late):") + 1
    assert set(range(first + 1, first + 5)).issubset(executed)
    assert lines[-1] == str(sum(x * 2 for x in range(1, 40, 2)) + sum(x for x in range(-5, 40) if x > 2 or x < -3))


FORKING = PENDING + """
import os


def hot(data):
    return sum([x for x in data if x & 1])


if os.fork() == 0:
    os._exit(0)
os.wait()
# A function that first starts well after the fork (3.13 restarts the
# tidying thread from there).
time.sleep(0.1)
hot([1, 2])
deadline = time.monotonic() + (20 if MONITORING else 0)
while time.monotonic() < deadline and pending(hot):
    for _ in range(100):
        hot(range(100))
print(pending(hot))
"""


def test_tidying_goes_on_after_a_fork(python, tmp_path):
    write(tmp_path / "forks.py", FORKING)
    result = python.pycov(["run", "--data-file", "data.pycov", "forks.py"], tmp_path)
    # No "multi-threaded fork" warning: the thread stops across the fork.
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


CALLEES = PENDING + """

def helper(data):
    return sum([x for x in data if x & 1])


def driver():
    spread = lambda data: [x for x in data if x > 1]
    helper(DATA)
    helper_pending = pending(helper) != []
    spread(DATA)
    print("before", helper_pending, pending(spread) != [])
    deadline = time.monotonic() + (20 if MONITORING else 0.05)
    # Busy in this function alone: when a pass comes, neither helper nor
    # spread is on the stack, only the function that calls them.
    while True:
        for _ in range(100000):
            pass
        if time.monotonic() > deadline or not (pending(helper) or pending(spread)):
            break
    print("after", pending(helper), pending(spread))


DATA = list(range(10))
driver()
"""


def test_code_a_running_function_calls_is_tidied_too(python, tmp_path):
    write(tmp_path / "callees.py", CALLEES)
    result = python.pycov(["run", "--data-file", "data.pycov", "callees.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    monitoring = python.info >= (3, 12)
    # A global function and a lambda defined in the running function.
    assert result.stdout.splitlines() == [
        f"before {monitoring} {monitoring}",
        "after [] []",
    ]
    _, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "callees.py")
    assert missing == []
