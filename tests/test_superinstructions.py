"""Python 3.12: pycov puts back the superinstructions that instrumentation
takes out of running code (crates/pycov-runner/src/fusion.rs). Lines that
run only after that must still be measured, and a tool that starts later
must still see every line."""

from __future__ import annotations

import textwrap

from pycov_testing import file_lines, write

# Two functions of this shape, g and h, on lines of their own: a tool
# started on h must not re-arm g's lines.
FUNCTION = """
def {name}(a, late):
    b, c = a, a
    if late:
        x = b
        y = x
        return y + c
    return b + c

"""

PROGRAM = """
import dis, sys, threading, time

FUSING = sys.version_info[:2] == (3, 12)

""" + FUNCTION.format(name="g") + FUNCTION.format(name="h") + """
def fused(code):
    return [i.opname for i in dis.get_instructions(code, adaptive=True) if "__" in i.opname]


def run_until(function, late, more_than):
    # Until pycov fused more pairs of it (3.12), or for a moment.
    deadline = time.monotonic() + (20 if FUSING else 0.05)
    while time.monotonic() < deadline and len(fused(function.__code__)) <= more_than:
        for _ in range(1000):
            function(1, late)


# The hot code runs in another thread first.
worker = threading.Thread(target=run_until, args=(g, False, 0))
worker.start()
worker.join()
before = len(fused(g.__code__))
# The lines under `if late:` run for the first time now: `y = x` starts
# with a LOAD_FAST right after `x = b`'s STORE_FAST, a pair that must not
# be fused while that line has not run.
print(g(2, True))
run_until(g, True, before)
print("fused", before, len(fused(g.__code__)))

# Tools starting on fused code see every line they run. (Not on g: they
# would instrument g's lines again, for pycov too.) h first gets all the
# pairs a fresh copy of its code has.
h(1, False)
h(1, True)
run_until(h, True, len(fused(h.__code__.replace())) - 1)
if hasattr(sys, "monitoring"):
    print("h fused", len(fused(h.__code__)), "of", len(fused(h.__code__.replace())))
    mon = sys.monitoring
    seen = set()
    mon.use_tool_id(4, "other")
    mon.register_callback(4, mon.events.LINE, lambda code, line: seen.add(line - code.co_firstlineno))
    mon.set_local_events(4, h.__code__, mon.events.LINE)
    h(3, True)
    mon.set_local_events(4, h.__code__, 0)
    mon.free_tool_id(4)
    print("other tool saw", sorted(seen))
    # Adding a tool's LINE events armed pycov's again on every line of h
    # (CPython 3.12 and 3.13 do that): `return b + c` must run again before
    # its pair can be fused.
    h(1, False)
    run_until(h, True, len(fused(h.__code__.replace())) - 1)
    print("h fused again", len(fused(h.__code__)), "of", len(fused(h.__code__.replace())))
    traced = set()

    # No tool sees the lines of a trace function.
    def trace(frame, event, arg):  # pragma: no cover
        if event == "line" and frame.f_code is h.__code__:
            traced.add(frame.f_lineno - h.__code__.co_firstlineno)
        return trace

    sys.settrace(trace)
    h(3, True)
    sys.settrace(None)
    print("settrace saw", sorted(traced))
"""


def test_lines_that_run_after_fusing_are_measured(python, tmp_path):
    write(tmp_path / "prog.py", PROGRAM)
    result = python.pycov(["run", "--data-file", "data.pycov", "prog.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    executed, missing = file_lines(python.pycov_json(tmp_path, "data.pycov"), "prog.py")
    program = textwrap.dedent(PROGRAM).removeprefix("\n").splitlines()
    monitoring_block = program.index('if hasattr(sys, "monitoring"):') + 1
    # Python 3.11 has no sys.monitoring for the other tool.
    without_monitoring = [n for n in range(monitoring_block + 1, len(program) + 1) if program[n - 1].strip()]
    if python.info < (3, 12):
        assert missing and set(missing) <= set(without_monitoring)
    else:
        assert missing == []
    # g's `x = b`, `y = x`, `return y + c`: run only after the first fusing.
    assert {9, 10, 11}.issubset(executed)
    lines = result.stdout.splitlines()
    assert lines[0] == "4"
    _, before, after = lines[1].split()
    if python.info == (3, 12):
        # pycov fused pairs in the hot code, and more once `if late:` ran.
        assert 0 < int(before) < int(after), lines[1]
    elif python.info >= (3, 13):
        # No superinstructions of this kind: nothing to put back.
        assert (before, after) == ("0", "0")
    if python.info >= (3, 12):
        fused_h = lines[2].split()
        if python.info == (3, 12):
            assert fused_h[2] == fused_h[4] != "0", lines[2]
        assert lines[3] == "other tool saw [1, 2, 3, 4, 5]"
        if python.info == (3, 12):
            fused_h = lines[4].split()
            assert fused_h[3] == fused_h[5] != "0", lines[4]
        assert lines[5] == "settrace saw [1, 2, 3, 4, 5]"
