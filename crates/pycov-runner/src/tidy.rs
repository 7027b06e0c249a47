//! Puts code that already reported its lines back to plain speed (Python
//! 3.12 and 3.13), from a thread of ours that takes the GIL every so often,
//! or from a `PY_START` callback that finds a pass due (see [`FIRST_WAIT`]).
//! Then every Python thread stands between two instructions, and a pass
//! rewrites the code objects on the threads' stacks, where the time goes,
//! and, for measured code there, the code it calls in its loops (see
//! [`neighbourhood`]).
//! (A pending call would run in the main thread, but CPython 3.12 runs one
//! queued from another thread only when something else interrupts the main
//! thread: python/cpython#95820.) The rewriting itself runs no Python code;
//! reading `co_code` and `co_linetable` before it may (a garbage
//! collection).
//!
//! Two things slow code down after all its `LINE` events were disabled:
//! - Line starts that never report. CPython makes every jump target a line
//!   start too, and a jump that stays within one line (the loop of a
//!   comprehension or generator expression, `and`/`or`, `a if c else b`)
//!   reports nothing, so nothing disables it: every pass through it calls
//!   into the instrumentation code and keeps the instruction from
//!   specializing. A comprehension loop runs 35 % slower, and an `and`/`or`
//!   loop 50 %, under any `sys.monitoring` line tool. Once the line is
//!   recorded its line starts have served, and a pass removes them exactly
//!   as CPython does when a callback returns `DISABLE` there.
//! - Python 3.12: superinstructions split by instrumentation (see `fusion`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pycov_core::{LineNo, RecordedFile};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFunction};

use crate::ffi::{self, LineInstrumentation, MonitoringPointers, LINE_EVENT_INDEX};
use crate::fusion::OpcodeTable;
use crate::opcodes::{instruction_offsets, Opcodes};
use crate::util::{lock, AddressMap};

/// A function with a loop inside one line, to check the layout of the
/// `LINE` instrumentation against what the interpreter itself made.
const LINE_PROBE: &std::ffi::CStr = c"def probe(xs):\n    return [x for x in xs if x]\n";

/// CPython's `adaptive_counter_warmup()` (3.12 and 3.13): what it puts in
/// an instruction's counter when it takes instrumentation off, so that the
/// instruction specializes soon.
const COUNTER_WARMUP: u16 = (1 << 4) | 1;

/// How many frames of each thread's stack a pass looks at, from the top.
const FRAMES_PER_THREAD: usize = 64;

/// When a running code object is measured, the code it is likely to be
/// calling in a loop: the code objects nested in it (a generator
/// expression, a `key=` lambda, a callback defined inside it) and the
/// functions its global names refer to. Those spend most of their time off
/// the stack, between calls, where a pass would rarely find them. Each
/// code object once per pass (`seen`); immortal ones are left out, as in
/// [`ffi::running_code_objects`].
fn neighbourhood<'py>(
    py: Python<'py>,
    running: ffi::RunningCode<'py>,
    measured: bool,
    seen: &mut std::collections::HashSet<usize>,
) -> Vec<Bound<'py, PyAny>> {
    let ffi::RunningCode { code, globals } = running;
    let mut found = Vec::new();
    if !measured {
        return found;
    }
    let mut nested = vec![code.clone()];
    while let Some(outer) = nested.pop() {
        for inner in crate::util::nested_code_objects(&outer).unwrap_or_default() {
            if !ffi::is_immortal(&inner) && seen.insert(inner.as_ptr() as usize) {
                nested.push(inner.clone());
                found.push(inner);
            }
        }
    }
    let (Some(globals), Ok(names)) = (
        globals.and_then(|g| g.cast_into::<PyDict>().ok()),
        code.getattr(intern!(py, "co_names")),
    ) else {
        return found;
    };
    for name in names.try_iter().into_iter().flatten().flatten() {
        let Ok(Some(value)) = globals.get_item(&name) else {
            continue;
        };
        if !value.is_instance_of::<PyFunction>() {
            continue;
        }
        if let Ok(callee) = value.getattr(intern!(py, "__code__")) {
            if !ffi::is_immortal(&callee) && seen.insert(callee.as_ptr() as usize) {
                found.push(callee);
            }
        }
    }
    found
}

/// The first wait between passes, and the longest: the wait doubles after
/// each pass. A pass the thread makes has the program's threads hand over
/// the GIL (a pass itself takes 0.1-0.2 ms, `PYCOV_DEBUG=timing` counts
/// them): a pass every 20 ms made a 2 s test suite 1 % slower, one every
/// 160 ms costs 0.1 %, and code a program turns to is back at plain speed
/// within 160 ms. While the program keeps starting new code (a test suite),
/// a `PY_START` callback that finds a pass due makes it instead, holding the
/// GIL already: on a virtual machine the thread's passes cost the toolz
/// suite 1 % of its time, mostly in waking threads.
const FIRST_WAIT: Duration = Duration::from_millis(20);
const LONGEST_WAIT: Duration = Duration::from_millis(160);

/// When the next pass is due (see [`monotonic_ms`]); `u64::MAX` while
/// no thread runs passes.
static NEXT_PASS_MS: AtomicU64 = AtomicU64::new(u64::MAX);
/// The wait after the next pass.
static NEXT_WAIT_MS: AtomicU64 = AtomicU64::new(0);
/// Set while a pass runs: it may run Python code (a garbage collection),
/// which may start code objects.
static PASSING: AtomicBool = AtomicBool::new(false);

/// Milliseconds since pycov first asked.
fn monotonic_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = EPOCH.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

fn schedule_first_pass() {
    let first = u64::try_from(FIRST_WAIT.as_millis()).unwrap_or(u64::MAX);
    NEXT_WAIT_MS.store(2 * first, Ordering::Relaxed);
    NEXT_PASS_MS.store(monotonic_ms().saturating_add(first), Ordering::Relaxed);
}

/// One tidying pass, unless one is running, and the next one scheduled.
fn run_pass(py: Python<'_>) {
    if PASSING.swap(true, Ordering::Acquire) {
        return;
    }
    let started = std::time::Instant::now();
    ffi::tidy_for_active_session(py);
    crate::timing::tidy_pass(started.elapsed());
    let wait = NEXT_WAIT_MS.load(Ordering::Relaxed);
    let longest = u64::try_from(LONGEST_WAIT.as_millis()).unwrap_or(u64::MAX);
    NEXT_WAIT_MS.store((2 * wait).min(longest), Ordering::Relaxed);
    // Unless the thread stopped meanwhile.
    let _ = NEXT_PASS_MS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |due| {
        (due != u64::MAX).then(|| monotonic_ms().saturating_add(wait))
    });
    PASSING.store(false, Ordering::Release);
}

/// Called as a code object starts for the first time: makes a pass if one
/// is due, saving the thread a GIL handover.
#[inline]
pub(crate) fn pass_if_due(py: Python<'_>) {
    if monotonic_ms() >= NEXT_PASS_MS.load(Ordering::Relaxed) {
        run_pass(py);
    }
}

/// Removing `LINE` instrumentation that has served.
#[derive(Debug, Clone)]
pub(crate) struct LineTidy {
    caches: [u8; 256],
    min_instrumented: u8,
    instrumented_line: u8,
    /// Our tool's bit in the per-event tool sets.
    tool_bit: u8,
    /// How many events a code object's tool sets cover (see
    /// `ffi::with_line_instrumentation`).
    local_events: usize,
}

/// What one pass over a code object's line starts did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LinePass {
    /// Line starts uninstrumented now.
    pub removed: usize,
    /// Line starts of ours still instrumented (lines not recorded yet, or
    /// not yet instrumented for the tools in effect).
    pub left: usize,
    /// The byte offset of the first line start that only a jump within its
    /// line reaches: only a new instrumentation puts `INSTRUMENTED_LINE`
    /// back there, since no event ever disables it.
    pub sentinel: Option<usize>,
}

impl LineTidy {
    /// Line tidying for this interpreter: CPython 3.12 or 3.13, and only
    /// when a probe instrumented for `tool_id` looks exactly as expected.
    fn for_interpreter(py: Python<'_>, opcodes: &Opcodes, tool_id: u8) -> Option<LineTidy> {
        // The counter value written is a little-endian one on 3.13.
        if py.version_info() < (3, 12)
            || py.version_info() >= (3, 14)
            || cfg!(target_endian = "big")
        {
            return None;
        }
        let tidy = LineTidy {
            caches: opcodes.caches,
            min_instrumented: opcodes.min_instrumented,
            instrumented_line: opcodes.instrumented_line,
            tool_bit: 1u8.checked_shl(u32::from(tool_id))?,
            local_events: ffi::local_event_count(py),
        };
        let sys = py.import("sys").ok()?;
        // Free-threaded builds run bytecode while we hold no lock at all.
        if sys
            .getattr("_is_gil_enabled")
            .and_then(|enabled| enabled.call0())
            .is_ok_and(|enabled| !enabled.is_truthy().unwrap_or(true))
        {
            return None;
        }
        let monitoring = sys.getattr("monitoring").ok()?;
        let line_event = monitoring.getattr("events").ok()?.getattr("LINE").ok()?;
        if line_event.extract::<u32>().ok()? != 1 << LINE_EVENT_INDEX {
            return None;
        }
        let globals = PyDict::new(py);
        py.run(LINE_PROBE, Some(&globals), None).ok()?;
        let code = globals.get_item("probe").ok()??.getattr("__code__").ok()?;
        let base = code.getattr("co_code").ok()?.cast_into::<PyBytes>().ok()?;
        let lines = unit_lines(py, &code).ok()?;
        // Where we read `_co_monitoring`, a fresh code object holds null, and
        // then the data of one tool with line events only: no other arrays.
        if ffi::monitoring_pointers(&code, tidy.local_events)? != MonitoringPointers::default() {
            return None;
        }
        monitoring
            .call_method1("set_local_events", (tool_id, &code, &line_event))
            .ok()?;
        let pointers = ffi::monitoring_pointers(&code, tidy.local_events)?;
        let expected = MonitoringPointers {
            monitoring: pointers.monitoring,
            lines: pointers.lines,
            ..MonitoringPointers::default()
        };
        if pointers.monitoring == 0
            || pointers.lines == 0
            || pointers.lines % 8 != 0
            || pointers != expected
        {
            return None;
        }
        let matches = ffi::with_line_instrumentation(&code, tidy.local_events, |view| {
            tidy.matches_fresh_instrumentation(opcodes.resume, base.as_bytes(), &view, &lines)
        });
        monitoring
            .call_method1("set_local_events", (tool_id, &code, 0))
            .ok()?;
        (matches == Some(true)).then_some(tidy)
    }

    /// Whether `view`, the instrumentation of a probe that never ran, is
    /// what CPython makes for `LINE` events of our tool alone, with two
    /// line starts on its second line.
    fn matches_fresh_instrumentation(
        &self,
        resume: u8,
        base: &[u8],
        view: &LineInstrumentation<'_>,
        lines: &[Option<i64>],
    ) -> bool {
        let units = base.len() / 2;
        if view.live.len() != base.len()
            || view.local_line_tools != self.tool_bit
            || view.active_line_tools != self.tool_bit
            || view.line_tools.is_some()
            || view.first_traceable >= units
            || base[2 * view.first_traceable] != resume
        {
            return false;
        }
        let mut starts_on_second_line = 0;
        for at in instruction_offsets(base, &self.caches) {
            let unit = at / 2;
            let original = view.lines[unit][0];
            let instrumented = view.live[at] == self.instrumented_line;
            if unit < view.first_traceable {
                if instrumented {
                    return false;
                }
                continue;
            }
            if instrumented != (original != 0) || (instrumented && original != base[at]) {
                return false;
            }
            if instrumented && lines.get(unit).copied().flatten() == Some(2) {
                starts_on_second_line += 1;
            }
        }
        starts_on_second_line >= 2
    }

    /// Takes our `LINE` instrumentation off every line start of `view`
    /// whose line `recorded` says ran, as CPython does when the callback
    /// returns `DISABLE` there. `base` is the code's `co_code` and `lines`
    /// the line of each code unit. `None` if the data does not look as
    /// expected (nothing is written then).
    pub(crate) fn remove_recorded(
        &self,
        base: &[u8],
        view: LineInstrumentation<'_>,
        lines: &[Option<i64>],
        recorded: impl Fn(i64) -> bool,
    ) -> Option<LinePass> {
        if view.live.len() != base.len() || view.lines.len() * 2 != base.len() {
            return None;
        }
        if view.local_line_tools & self.tool_bit == 0 {
            return Some(LinePass::default());
        }
        // Without per-unit tool sets, CPython instrumented the code for our
        // tool alone; if more tools are in effect now, it redoes that before
        // the code runs again, so nothing can be removed yet.
        let removable = view.line_tools.is_some() || view.active_line_tools == self.tool_bit;
        // Everything is checked before the first write.
        let mut removals = Vec::new();
        let mut pass = LinePass::default();
        let mut previous_line = None;
        for at in instruction_offsets(base, &self.caches) {
            let unit = at / 2;
            let line = lines.get(unit).copied().flatten();
            let original = view.lines[unit][0];
            if original != 0 && line.is_some() && line == previous_line {
                pass.sentinel = pass.sentinel.or(Some(at));
            }
            previous_line = line;
            if view.live[at] != self.instrumented_line {
                continue;
            }
            if original == 0 {
                return None;
            }
            if original >= self.min_instrumented {
                // Another tool's instrumentation under the line start: it
                // is not ours to touch.
                continue;
            }
            if original != base[at] {
                return None;
            }
            let ours = view
                .line_tools
                .as_ref()
                .is_none_or(|tools| tools[unit] & self.tool_bit != 0);
            if !ours {
                continue;
            }
            match line {
                Some(line) if removable && recorded(line) => removals.push((at, original)),
                _ => pass.left += 1,
            }
        }
        let LineInstrumentation {
            live,
            mut line_tools,
            ..
        } = view;
        for (at, original) in removals {
            if let Some(tools) = line_tools.as_deref_mut() {
                tools[at / 2] &= !self.tool_bit;
                if tools[at / 2] != 0 {
                    continue;
                }
            }
            live[at] = original;
            if self.caches[usize::from(original)] > 0 {
                live[at + 2..at + 4].copy_from_slice(&COUNTER_WARMUP.to_ne_bytes());
            }
            pass.removed += 1;
        }
        Some(pass)
    }
}

/// The line of each code unit of `code`.
fn unit_lines(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Vec<Option<i64>>> {
    let (table, first) = crate::util::line_table(py, code)?;
    Ok(pycov_analysis::linetable::lines_by_code_unit(
        table.as_bytes(),
        first,
    ))
}

/// What a pass may do to a code object.
pub(crate) enum CodeKind<'a> {
    /// Nothing (pycov measures it through `INSTRUCTION` events).
    Leave,
    /// Not measured: only fuse.
    Unmeasured,
    /// Measured into this file.
    Measured(&'a RecordedFile),
}

/// How to notice that CPython instrumented a settled code object anew
/// (another tool, `restart_events`), which undoes what a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sentinels {
    /// A line start only a jump within its line reaches (see [`LinePass`]):
    /// it holds `INSTRUMENTED_LINE` again.
    line_start: Option<usize>,
    /// A fused pair (3.12), with its fused opcode: it is split again.
    fused: Option<(usize, u8)>,
}

/// What a pass did to one code object.
enum Outcome {
    /// Nothing is left to do.
    Settled(Sentinels),
    /// A later pass may find more to do.
    Unsettled,
    /// Its data did not look as expected.
    Unexpected,
}

/// Tidying for one session.
#[derive(Debug)]
pub(crate) struct Tidy {
    /// Removing `LINE` instrumentation that has served, if this
    /// interpreter's data look as expected.
    lines: Option<LineTidy>,
    /// Python 3.12: fusing superinstructions.
    fusing: Option<OpcodeTable>,
    instrumented_line: u8,
    /// Code objects (by address) with nothing left to do. A new code object
    /// at the same address most likely fails the sentinels' check.
    done: Mutex<AddressMap<Sentinels>>,
    /// Set when a code object did not look as expected: then nothing more is
    /// touched.
    given_up: AtomicBool,
}

impl Tidy {
    /// Tidying for this interpreter and our tool id; `None` if there is
    /// nothing it can do here.
    pub(crate) fn for_interpreter(
        py: Python<'_>,
        opcodes: &Opcodes,
        fusing: Option<OpcodeTable>,
        tool_id: u8,
    ) -> Option<Tidy> {
        let lines = LineTidy::for_interpreter(py, opcodes, tool_id);
        if lines.is_none() && fusing.is_none() {
            return None;
        }
        Some(Tidy {
            lines,
            fusing,
            instrumented_line: opcodes.instrumented_line,
            done: Mutex::new(AddressMap::default()),
            given_up: AtomicBool::new(false),
        })
    }

    /// One pass over the code running on every thread; `kind_of` says
    /// what may be done to a code object.
    pub(crate) fn tidy_running_code<'s>(
        &self,
        py: Python<'_>,
        kind_of: impl Fn(&Bound<'_, PyAny>) -> CodeKind<'s>,
    ) {
        if self.given_up.load(Ordering::Relaxed) {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        for running in ffi::running_code_objects(py, FRAMES_PER_THREAD) {
            let kind = kind_of(&running.code);
            let measured = matches!(kind, CodeKind::Measured(_));
            // Already found as another's neighbour, it still has its own.
            if seen.insert(running.code.as_ptr() as usize)
                && !self.tidy_one(py, &running.code, kind)
            {
                return;
            }
            for code in neighbourhood(py, running, measured, &mut seen) {
                if !self.tidy_one(py, &code, kind_of(&code)) {
                    return;
                }
            }
        }
    }

    /// Tidies `code` unless it is settled and intact; false once a code
    /// object did not look as expected (then nothing more is touched).
    fn tidy_one(&self, py: Python<'_>, code: &Bound<'_, PyAny>, kind: CodeKind<'_>) -> bool {
        if matches!(kind, CodeKind::Leave) {
            return true;
        }
        let address = code.as_ptr() as usize;
        let done = lock(&self.done).get(&address).copied();
        if let Some(sentinels) = done {
            if self.intact(code, sentinels) {
                return true;
            }
        }
        match self.tidy_code(py, code, kind) {
            Outcome::Settled(sentinels) => {
                lock(&self.done).insert(address, sentinels);
            }
            Outcome::Unsettled => {
                lock(&self.done).remove(&address);
            }
            Outcome::Unexpected => {
                self.given_up.store(true, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    /// Whether a settled code object still looks as a pass left it.
    fn intact(&self, code: &Bound<'_, PyAny>, sentinels: Sentinels) -> bool {
        ffi::with_adaptive_code(code, |live| {
            let line_start = sentinels
                .line_start
                .is_none_or(|at| live.get(at).is_some_and(|&op| op != self.instrumented_line));
            let fused = sentinels
                .fused
                .is_none_or(|(at, opcode)| live.get(at) == Some(&opcode));
            line_start && fused
        })
        .unwrap_or(true)
    }

    /// Tidies one code object.
    fn tidy_code(&self, py: Python<'_>, code: &Bound<'_, PyAny>, kind: CodeKind<'_>) -> Outcome {
        let Ok(base) = code.getattr(intern!(py, "co_code")) else {
            return Outcome::Unsettled;
        };
        let Ok(base) = base.cast::<PyBytes>() else {
            return Outcome::Unsettled;
        };
        let base = base.as_bytes();
        let mut settled = true;
        let mut sentinels = Sentinels::default();
        if let (CodeKind::Measured(file), Some(tidy)) = (kind, &self.lines) {
            let Ok(lines) = unit_lines(py, code) else {
                return Outcome::Unsettled;
            };
            let recorded = |line: i64| {
                u32::try_from(line)
                    .ok()
                    .and_then(LineNo::new)
                    .is_some_and(|line| file.contains(line))
            };
            let pass = ffi::with_line_instrumentation(code, tidy.local_events, |view| {
                tidy.remove_recorded(base, view, &lines, recorded)
            });
            match pass {
                Some(Some(pass)) => {
                    settled &= pass.left == 0;
                    sentinels.line_start = pass.sentinel;
                }
                Some(None) => return Outcome::Unexpected,
                // No line instrumentation (yet).
                None => settled = false,
            }
        }
        if let Some(table) = &self.fusing {
            match ffi::with_adaptive_code(code, |live| table.fuse(base, live)) {
                Some(Some(pass)) => {
                    settled &= pass.blocked == 0;
                    sentinels.fused = pass.sentinel;
                }
                Some(None) => return Outcome::Unexpected,
                None => {}
            }
        }
        if settled {
            Outcome::Settled(sentinels)
        } else {
            Outcome::Unsettled
        }
    }
}

/// The thread that runs tidying passes while a session measures, if any, and
/// whether a fork stopped it.
static TIMER: Mutex<TimerState> = Mutex::new(TimerState {
    timer: None,
    paused_for_fork: false,
});

struct TimerState {
    timer: Option<TidyTimer>,
    paused_for_fork: bool,
}

/// Starts the thread that runs tidying passes (the program only runs slower
/// if that fails).
pub(crate) fn start_timer() {
    let mut state = lock(&TIMER);
    if state.timer.is_none() {
        state.timer = TidyTimer::start().ok();
    }
}

/// Stops that thread and waits for it.
pub(crate) fn stop_timer(py: Python<'_>) {
    let timer = {
        let mut state = lock(&TIMER);
        // No restart after a fork that is still pending.
        state.paused_for_fork = false;
        RESTART_REQUESTED_AT.store(0, Ordering::Relaxed);
        state.timer.take()
    };
    if let Some(mut timer) = timer {
        // The thread may be waiting for the GIL.
        py.detach(|| timer.stop());
    }
}

/// Before `os.fork()`: stops the thread. Python 3.12 warns when a process
/// with more than one thread forks (a `DeprecationWarning` the program
/// would see), counting every thread of the process.
pub(crate) fn pause_for_fork(py: Python<'_>) {
    let timer = {
        let mut state = lock(&TIMER);
        let timer = state.timer.take();
        // `|=`: the hooks may be registered twice (a nested run).
        state.paused_for_fork |= timer.is_some();
        timer
    };
    if let Some(mut timer) = timer {
        let before = os_thread_count();
        py.detach(|| {
            timer.stop();
            // `join` returns before Linux stops counting the thread, and
            // the fork warning reads that count: wait for it (briefly).
            if let Some(before) = before {
                let deadline = std::time::Instant::now() + Duration::from_millis(200);
                while os_thread_count().is_some_and(|now| now >= before)
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        });
    }
}

/// The process's thread count as the kernel reports it (the 20th field of
/// `/proc/self/stat`, which CPython's fork warning reads); `None` elsewhere.
fn os_thread_count() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: the 3rd on.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(17)?.parse().ok()
}

/// Python 3.13: when (see [`monotonic_ms`]) a fork in this process
/// stopped the thread, which starts again from a later `PY_START`; 0 if
/// none is due.
static RESTART_REQUESTED_AT: AtomicU64 = AtomicU64::new(0);

/// How long after such a fork the thread waits to start again: past the
/// fork's own hooks and warning.
const RESTART_DELAY_MS: u64 = 50;

/// After `os.fork()`, in the parent. Python 3.12 counts the process's
/// threads for its fork warning before the fork hooks run, so the thread
/// starts again at once. Python 3.13 counts them after the hooks, and even
/// a pending call runs before that: there a `PY_START` after
/// [`RESTART_DELAY_MS`] starts it (see [`restart_if_due`]).
pub(crate) fn resume_after_fork_in_parent(py: Python<'_>) {
    if py.version_info() < (3, 13) {
        resume_after_fork();
    } else {
        RESTART_REQUESTED_AT.store(monotonic_ms().max(1), Ordering::Relaxed);
    }
}

/// Called as a code object starts for the first time: starts the thread
/// again if a fork of this process stopped it long enough ago.
#[inline]
pub(crate) fn restart_if_due() {
    let requested = RESTART_REQUESTED_AT.load(Ordering::Relaxed);
    if requested != 0 {
        restart_if_due_at(requested);
    }
}

#[cold]
fn restart_if_due_at(requested: u64) {
    let due = monotonic_ms() >= requested.saturating_add(RESTART_DELAY_MS);
    if due
        && RESTART_REQUESTED_AT
            .compare_exchange(requested, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        resume_after_fork();
    }
}

/// After `os.fork()`: starts the thread again if the fork stopped it. The
/// child gives up if the lock was copied held.
pub(crate) fn resume_after_fork() {
    if let Ok(mut state) = TIMER.try_lock() {
        if std::mem::take(&mut state.paused_for_fork) {
            state.timer = TidyTimer::start().ok();
        }
    }
}

/// The thread that runs tidying passes.
#[derive(Debug)]
struct TidyTimer {
    /// Set before the thread is stopped: it then makes no more passes, even
    /// if it holds the GIL already (the program might be in a fork hook
    /// that holds other locks).
    stopping: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a fork's child has no such thread.
    pid: u32,
}

impl TidyTimer {
    fn start() -> std::io::Result<TidyTimer> {
        schedule_first_pass();
        let (stop, stopped) = mpsc::channel::<()>();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread_stopping = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("pycov-tidy".to_owned())
            .spawn(move || loop {
                let due = NEXT_PASS_MS.load(Ordering::Relaxed);
                let now = monotonic_ms();
                if now < due {
                    // Woken early only to stop; a pass made meanwhile by a
                    // callback moves the next one on.
                    let sleep = Duration::from_millis((due - now).min(1000));
                    match stopped.recv_timeout(sleep) {
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                let passed = Python::try_attach(|py| {
                    let due = NEXT_PASS_MS.load(Ordering::Relaxed);
                    if !thread_stopping.load(Ordering::Acquire) && monotonic_ms() >= due {
                        run_pass(py);
                    }
                });
                if passed.is_none() || NEXT_PASS_MS.load(Ordering::Relaxed) <= now {
                    // No interpreter, or a pass already running: try later.
                    match stopped.recv_timeout(FIRST_WAIT) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
            })?;
        Ok(TidyTimer {
            stopping,
            stop: Some(stop),
            thread: Some(thread),
            pid: std::process::id(),
        })
    }

    /// Stops the thread and waits for it (in the process that started it).
    /// Call it without the GIL: the thread may be waiting for it.
    fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        NEXT_PASS_MS.store(u64::MAX, Ordering::Relaxed);
        let stop = self.stop.take();
        let thread = self.thread.take();
        if self.pid != std::process::id() {
            // A fork's copy: the thread does not exist here.
            std::mem::forget(stop);
            std::mem::forget(thread);
            return;
        }
        drop(stop);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LF: u8 = 124;
    const FOR_ITER: u8 = 93; // one cache entry in this made-up table
    const LINE: u8 = 254;
    const US: u8 = 1 << 2;
    const OTHER: u8 = 1 << 5;

    fn tidy() -> LineTidy {
        let mut caches = [0; 256];
        caches[usize::from(FOR_ITER)] = 1;
        LineTidy {
            caches,
            min_instrumented: 237,
            instrumented_line: LINE,
            tool_bit: US,
            local_events: 15,
        }
    }

    /// Code units `(opcode, argument)`.
    fn code(units: &[(u8, u8)]) -> Vec<u8> {
        units.iter().flat_map(|&(op, arg)| [op, arg]).collect()
    }

    /// A line `1` loop (`LF`, `FOR_ITER` + cache, `LF`) whose second and
    /// third instructions are line starts only as jump targets, then line 2.
    fn loop_code() -> (Vec<u8>, Vec<Option<i64>>) {
        let base = code(&[(LF, 0), (FOR_ITER, 2), (0, 0), (LF, 1), (LF, 2)]);
        (base, vec![Some(1), Some(1), Some(1), Some(1), Some(2)])
    }

    fn view<'a>(
        live: &'a mut [u8],
        lines: &'a mut [[u8; 2]],
        line_tools: Option<&'a mut [u8]>,
        active: u8,
    ) -> LineInstrumentation<'a> {
        LineInstrumentation {
            live,
            lines,
            line_tools,
            local_line_tools: US,
            active_line_tools: active,
            first_traceable: 0,
        }
    }

    /// A pass over [`loop_code`] with this instrumentation state.
    fn pass_over_loop(
        live: &mut [u8],
        original: &mut [[u8; 2]],
        line_tools: Option<&mut [u8]>,
        active: u8,
        recorded: impl Fn(i64) -> bool,
    ) -> Option<LinePass> {
        let (base, lines) = loop_code();
        let view = view(live, original, line_tools, active);
        tidy().remove_recorded(&base, view, &lines, recorded)
    }

    /// A pass over [`loop_code`]: its sentinel is the loop's `FOR_ITER`.
    fn counts(removed: usize, left: usize) -> LinePass {
        LinePass {
            removed,
            left,
            sentinel: Some(2),
        }
    }

    /// [`loop_code`] as CPython instruments it, with the opcodes its line
    /// starts stand for.
    fn fresh_loop() -> (Vec<u8>, Vec<[u8; 2]>) {
        let live = code(&[(LINE, 0), (LINE, 2), (7, 0), (LINE, 1), (LINE, 2)]);
        (live, vec![[LF, 0], [FOR_ITER, 0], [0, 0], [LF, 0], [LF, 0]])
    }

    #[test]
    fn removes_line_starts_of_recorded_lines_only() {
        let (mut live, mut original) = fresh_loop();
        // The first instruction of line 1 reported and was disabled; the
        // loop's jump targets and line 2 are still instrumented.
        live[0] = LF;
        let pass = pass_over_loop(&mut live, &mut original, None, US, |l| l == 1);
        assert_eq!(pass, Some(counts(2, 1)));
        // The cache counter of FOR_ITER restarts its warm-up, so it
        // specializes again.
        let warmup = COUNTER_WARMUP.to_ne_bytes();
        assert_eq!(
            live,
            code(&[
                (LF, 0),
                (FOR_ITER, 2),
                (warmup[0], warmup[1]),
                (LF, 1),
                (LINE, 2)
            ])
        );
        // What instrumentation stood for stays, as after a `DISABLE`.
        assert_eq!(original[1], [FOR_ITER, 0]);
    }

    #[test]
    fn with_other_tools_clears_only_our_bit() {
        let (mut live, mut original) = fresh_loop();
        live[0] = LF;
        let mut tools = vec![0, US | OTHER, 0, US, US | OTHER];
        let pass = pass_over_loop(
            &mut live,
            &mut original,
            Some(&mut tools),
            US | OTHER,
            |_| true,
        );
        // The other tool still wants events at units 1 and 4.
        assert_eq!(pass, Some(counts(1, 0)));
        assert_eq!(tools, vec![0, OTHER, 0, 0, OTHER]);
        assert_eq!(
            live,
            code(&[(LF, 0), (LINE, 2), (7, 0), (LF, 1), (LINE, 2)])
        );
    }

    #[test]
    fn leaves_code_instrumented_for_other_tools_alone() {
        let (fresh, _) = fresh_loop();
        let (mut live, mut original) = fresh_loop();
        // Another tool's LINE events were just added and CPython has not
        // instrumented the code for both yet: no per-unit tool sets.
        let pass = pass_over_loop(&mut live, &mut original, None, US | OTHER, |_| true);
        assert_eq!(pass, Some(counts(0, 4)));
        assert_eq!(live, fresh);
        // Instrumentation of another tool under a line start stays.
        original[0] = [240, 0];
        let pass = pass_over_loop(&mut live, &mut original, None, US, |_| true);
        assert_eq!(pass, Some(counts(3, 0)));
        assert_eq!(live[0], LINE);
    }

    #[test]
    fn refuses_data_that_does_not_belong_to_the_code() {
        let (fresh, _) = fresh_loop();
        // A line start standing for another opcode than the code's.
        let (mut live, mut original) = fresh_loop();
        original[3] = [FOR_ITER, 0];
        let pass = pass_over_loop(&mut live, &mut original, None, US, |_| true);
        assert_eq!(pass, None);
        assert_eq!(live, fresh, "nothing written before the check failed");
        // A line start standing for no opcode at all.
        let (mut live, mut original) = fresh_loop();
        original[4] = [0, 0];
        assert_eq!(
            pass_over_loop(&mut live, &mut original, None, US, |_| true),
            None
        );
        // Line data of another length.
        let pass = pass_over_loop(&mut live, &mut [[LF, 0]], None, US, |_| true);
        assert_eq!(pass, None);
    }

    #[test]
    fn checks_fresh_instrumentation_of_the_probe() {
        let resume = 151;
        let base = code(&[(resume, 0), (LF, 0), (FOR_ITER, 2), (0, 0), (LF, 1)]);
        let lines = vec![Some(1), Some(2), Some(2), Some(2), Some(2)];
        let fresh = || code(&[(resume, 0), (LINE, 0), (LINE, 2), (7, 0), (LINE, 1)]);
        let original = || vec![[0, 0], [LF, 0], [FOR_ITER, 0], [0, 0], [LF, 0]];
        let (mut live, mut data) = (fresh(), original());
        let good = view(&mut live, &mut data, None, US);
        assert!(tidy().matches_fresh_instrumentation(resume, &base, &good, &lines));
        // A line start CPython did not instrument: layout not understood.
        let mut live = fresh();
        live[2] = LF;
        let (mut data, mut tools) = (original(), vec![US; 5]);
        let bad = view(&mut live, &mut data, None, US);
        assert!(!tidy().matches_fresh_instrumentation(resume, &base, &bad, &lines));
        // Per-unit tool sets although we are the only tool.
        let mut live = fresh();
        let bad = view(&mut live, &mut data, Some(&mut tools), US);
        assert!(!tidy().matches_fresh_instrumentation(resume, &base, &bad, &lines));
    }
}
