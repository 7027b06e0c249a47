//! Python 3.12 and 3.13: the per-code-unit line data CPython keeps for
//! `LINE` events (`_co_monitoring->lines`), computed by pycov and handed to
//! CPython before it is asked for `LINE` events.
//!
//! CPython computes this data when a code object first gets `LINE` events:
//! a line-table lookup per instruction and three passes over the bytecode,
//! about 70 % of what turning on `LINE` events costs (15,600 instructions
//! per code object in the benchmark's `many_funcs`). It skips that when the
//! array is already there. pycov sweeps the live bytecode once, decoding
//! the line table as it goes: 9,400 instructions all told, Python
//! attribute lookups included (`many_funcs` runs 4.8 % fewer instructions).
//!
//! The layout is CPython's private business, so nothing is written unless,
//! at start, pycov's data equals CPython's own for every code object of a
//! probe module that exercises each rule (see [`PROBE`]), and CPython keeps
//! and uses data written in advance.
//!
//! For functions that have not run yet (those nested in a measured module
//! as it starts), pycov goes one step further and instruments them itself
//! ([`LineData::install_ahead`]): CPython's `_Py_Instrument` sweeps the
//! whole bytecode twice to do it, once looking for events other than `LINE`
//! (there are none) and once for the line starts, 214 M instructions in
//! `many_funcs` SIZE 20000, which pycov does in 34 M. The first time, once
//! monitoring runs, the probe's code objects are instrumented both ways and
//! compared, bookkeeping included; nothing is instrumented ahead unless
//! they agree.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ffi::{
    self, LineInstrumentation, Monitors, INSTRUMENTED_EVENTS, LINE_EVENT_INDEX,
    PY_START_EVENT_INDEX,
};
use crate::fusion::OpcodeTable;
use crate::opcodes::Opcodes;

/// A line delta meaning "no line" (cache entries, units without a line).
const NO_LINE: i8 = -128;
/// Deltas are stored relative to `first_line + (code_unit >> OFFSET_SHIFT)`.
const OFFSET_SHIFT: usize = 4;
/// What CPython stores for the units before `_co_firsttraceable`.
const BEFORE_TRACEABLE: i8 = -127;

/// What the sweep does with an instruction's argument: CPython makes every
/// jump target a line start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpargUse {
    Ignored,
    /// `EXTENDED_ARG`: the high bits of the next instruction's.
    Extends,
    /// A jump to `next + oparg`.
    Forward,
    /// A jump to `next - oparg`.
    Backward,
    /// `FOR_ITER`, `SEND`: a jump to `next + oparg + 1`, past the `END_FOR`
    /// or `END_SEND` there.
    PastEnd,
}

/// One opcode as [`LineData::compute_from`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpcodeInfo {
    /// The base opcode it stands for (0: one that code which has not
    /// specialized yet never holds, or none).
    base: u8,
    /// Code units, inline cache entries included.
    length: u8,
    oparg: OpargUse,
    /// `END_FOR`, `END_SEND`, `END_ASYNC_FOR` and `RESUME` never start a line.
    may_start_line: bool,
    /// A superinstruction (3.12), which instrumenting splits: its first
    /// half, `base`, is written in its place.
    split: bool,
}

const UNKNOWN: OpcodeInfo = OpcodeInfo {
    base: 0,
    length: 1,
    oparg: OpargUse::Ignored,
    may_start_line: false,
    split: false,
};

/// The states of [`LineData::ahead`].
const AHEAD_UNCHECKED: u8 = 0;
const AHEAD_CHECKING: u8 = 1;
const AHEAD_USED: u8 = 2;
const AHEAD_UNUSED: u8 = 3;

/// Which bytecode [`LineData::compute`] reads base opcodes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bytecode {
    /// The live bytecode, else `co_code`.
    LiveFirst,
    /// The live bytecode alone.
    Live,
    /// `co_code`.
    Base,
}

/// What pycov alone makes of a code object's `sys.monitoring` bookkeeping
/// (see [`LineData::install_ahead`]): the interpreter's instrumentation
/// version and, per local event, the tools with global events, read off a
/// code object CPython has just brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Baseline {
    version: u64,
    globals: Vec<u8>,
}

/// What the data of one code object is computed from, besides its bytecode.
#[derive(Clone, Copy)]
struct Program<'a> {
    /// `co_linetable`.
    line_table: &'a [u8],
    first_line: i64,
    first_traceable: usize,
    exceptions: &'a [u8],
}

/// A code object's instrumentation: line data, bytecode and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instrumented {
    lines: Vec<[u8; 2]>,
    live: Vec<u8>,
    local: Vec<u8>,
    active: Vec<u8>,
    version: u64,
}

/// The rules of the running interpreter.
#[derive(Debug)]
pub(crate) struct LineData {
    /// By opcode as it stands in the bytecode: what it is.
    opcodes: [OpcodeInfo; 256],
    end_async_for: u8,
    resume: u8,
    instrumented_resume: u8,
    instrumented_line: u8,
    /// 3.12: instrumenting splits superinstructions.
    splits_superinstructions: bool,
    /// The delta for a line too far off to store (3.12: -127, 3.13: -126).
    computed_line: i8,
    /// 3.13: the delta for such a line where a line starts (-127).
    computed_line_start: Option<i8>,
    /// How many events a code object's tool sets cover (see
    /// `ffi::with_line_instrumentation`).
    local_events: usize,
    /// `sys.monitoring.set_local_events` and our tool id.
    set_local_events: Py<PyAny>,
    tool_id: u8,
    /// Whether instrumenting ahead gives what CPython gives, checked on the
    /// probe when first needed, with monitoring under way (see
    /// [`LineData::check_ahead`]): one of the `AHEAD_*` states.
    ahead: AtomicU8,
    /// `PYCOV_DEBUG=linedata`: check each code object's data against
    /// CPython's for a copy of it before writing, and count.
    checking: bool,
    written: AtomicUsize,
    instrumented_ahead: AtomicUsize,
    checked: AtomicUsize,
    differed: AtomicUsize,
}

/// A module whose code objects cover every rule [`LineData::compute`]
/// follows: code before `_co_firsttraceable` (cells, free variables,
/// generators), each kind of jump, `EXTENDED_ARG` (the long `if`),
/// exception handlers, `async for`, and lines too far from the first to
/// store as a delta (`# FAR` stands for 150 blank lines).
const PROBE: &str = "
def probe_flow(a, b):
    total = 0
    for x in a:
        if x and b:
            continue
        while b is not None and b > x:
            b -= 1
        total += x if x else -x
    try:
        total = total / b
    except ZeroDivisionError:
        total = None
    finally:
        a = None
    with open(__file__) as f:
        total = (total, f)
    return [y for y in a if y]
def probe_far(v):
    if v:
        v = 1
    # FAR
    v = v + 1
    return v
def probe_cells(v):
    def inner():
        return v
    return inner
def probe_generator(xs):
    yield from xs
    yield len(xs)
async def probe_async(xs):
    async for x in xs:
        await x
def probe_long(v):
    if v:
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
        v = v + 1; v = v + 2; v = v + 3; v = v + 4; v = v + 5; v = v + 6
    return v
";

impl LineData {
    /// The rules for this interpreter, if it is 3.12 or 3.13 and pycov's
    /// data equals CPython's on the probe (see the module's notes).
    pub(crate) fn for_interpreter(
        py: Python<'_>,
        opcodes: &Opcodes,
        fusing: Option<&OpcodeTable>,
        set_local_events: &Bound<'_, PyAny>,
        tool_id: u8,
    ) -> Option<LineData> {
        if py.version_info() < (3, 12)
            || py.version_info() >= (3, 14)
            || cfg!(target_endian = "big")
        {
            return None;
        }
        // Free-threaded builds run bytecode while we hold no lock at all.
        let gil_enabled = py.import("sys").ok()?.getattr("_is_gil_enabled");
        if gil_enabled
            .and_then(|enabled| enabled.call0()?.is_truthy())
            .ok()
            == Some(false)
        {
            return None;
        }
        let newer = py.version_info() >= (3, 13);
        let mut oparg_uses = [OpargUse::Ignored; 256];
        let mut mark = |names: &[&str], kind: OpargUse| {
            for name in names {
                if let Some(number) = opcodes.number(name) {
                    oparg_uses[usize::from(number)] = kind;
                }
            }
        };
        mark(
            &[
                "POP_JUMP_IF_FALSE",
                "POP_JUMP_IF_TRUE",
                "POP_JUMP_IF_NONE",
                "POP_JUMP_IF_NOT_NONE",
                "JUMP_FORWARD",
            ],
            OpargUse::Forward,
        );
        mark(&["FOR_ITER", "SEND"], OpargUse::PastEnd);
        mark(
            &["JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"],
            OpargUse::Backward,
        );
        mark(&["EXTENDED_ARG"], OpargUse::Extends);
        let mut never_starts = [false; 256];
        for name in ["END_FOR", "END_SEND", "END_ASYNC_FOR", "RESUME"] {
            never_starts[usize::from(opcodes.number(name)?)] = true;
        }
        let mut deopt = [0u8; 256];
        for (name, number) in opcodes.numbers() {
            match name.strip_prefix("INSTRUMENTED_") {
                Some("LINE" | "INSTRUCTION") => {}
                Some(base) => deopt[usize::from(number)] = opcodes.number(base).unwrap_or(0),
                None => deopt[usize::from(number)] = number,
            }
        }
        let mut split = [false; 256];
        if !newer {
            // Fused at creation (3.12): without them most code that has not
            // run yet would need `co_code`.
            for (fused, first) in fusing?.fused_opcodes() {
                deopt[usize::from(fused)] = first;
                split[usize::from(fused)] = true;
            }
        }
        let mut table = [UNKNOWN; 256];
        for ((info, base), split) in table.iter_mut().zip(deopt).zip(split) {
            if base != 0 {
                let base_index = usize::from(base);
                *info = OpcodeInfo {
                    base,
                    length: 1 + opcodes.caches[base_index],
                    oparg: oparg_uses[base_index],
                    may_start_line: !never_starts[base_index],
                    split,
                };
            }
        }
        let data = LineData {
            opcodes: table,
            end_async_for: opcodes.number("END_ASYNC_FOR")?,
            resume: opcodes.resume,
            instrumented_resume: opcodes.number("INSTRUMENTED_RESUME")?,
            instrumented_line: opcodes.instrumented_line,
            splits_superinstructions: !newer,
            computed_line: if newer { -126 } else { -127 },
            computed_line_start: newer.then_some(-127),
            local_events: ffi::local_event_count(py),
            set_local_events: set_local_events.clone().unbind(),
            tool_id,
            ahead: AtomicU8::new(AHEAD_UNCHECKED),
            checking: crate::util::debugging("linedata"),
            written: AtomicUsize::new(0),
            instrumented_ahead: AtomicUsize::new(0),
            checked: AtomicUsize::new(0),
            differed: AtomicUsize::new(0),
        };
        data.matches_cpython(py).then_some(data)
    }

    /// Whether, for every code object of [`PROBE`], the data computed here
    /// equals what CPython computes, and CPython keeps data written before
    /// it turns on `LINE` events (then its bytecode comes out the same).
    fn matches_cpython(&self, py: Python<'_>) -> bool {
        let check = || -> PyResult<bool> {
            let (theirs, ours) = (probe_code(py)?, probe_code(py)?);
            if theirs.len() < 7 || theirs.len() != ours.len() {
                return Ok(false);
            }
            for (their_code, our_code) in theirs.iter().zip(&ours) {
                let table = crate::util::line_table_bytes(py, their_code)?;
                let Some(expected) = self.compute(py, their_code, &table, Bytecode::LiveFirst)?
                else {
                    return Ok(false);
                };
                let from_base = self.compute(py, their_code, &table, Bytecode::Base)?;
                if from_base.as_ref() != Some(&expected) {
                    return Ok(false);
                }
                let Some(cpython) = self.instrumented_by_cpython(py, their_code)? else {
                    return Ok(false);
                };
                let our_table = crate::util::line_table_bytes(py, our_code)?;
                if cpython.lines != expected || !self.install(py, our_code, &our_table)? {
                    return Ok(false);
                }
                let before = ffi::monitoring_pointers(our_code, self.local_events);
                let ours = self.instrumented_by_cpython(py, our_code)?;
                // CPython kept the data (the pointers are the same afterwards).
                if ffi::monitoring_pointers(our_code, self.local_events) != before
                    || ours != Some(cpython)
                {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        check().unwrap_or(false)
    }

    /// Gives `code` the line data CPython would compute when it first gets
    /// `LINE` events, unless it has some already. Returns whether it was
    /// written.
    /// `table` is its `co_linetable`.
    pub(crate) fn install(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        table: &Bound<'_, PyBytes>,
    ) -> PyResult<bool> {
        let Some(pointers) = ffi::monitoring_pointers(code, self.local_events) else {
            return Ok(false);
        };
        if pointers.lines != 0 {
            return Ok(false);
        }
        if pointers.monitoring == 0 {
            // Has CPython allocate the monitoring data and nothing else: the
            // events for our tool are none already.
            self.set_local_events.call1(py, (self.tool_id, code, 0))?;
        }
        let Some(data) = self.compute(py, code, table, Bytecode::LiveFirst)? else {
            return Ok(false);
        };
        if self.checking && !self.agrees_with_cpython(py, code, &data)? {
            return Ok(false);
        }
        let written = ffi::install_line_data(code, self.local_events, &data);
        if written {
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(written)
    }

    /// `PYCOV_DEBUG=linedata`: whether `data` is what CPython computes for a
    /// copy of `code`; says so on stderr when not.
    fn agrees_with_cpython(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        data: &[[u8; 2]],
    ) -> PyResult<bool> {
        let twin = code.call_method0(intern!(py, "replace"))?;
        let theirs = self.instrumented_by_cpython(py, &twin)?;
        let agrees = theirs.is_some_and(|theirs| theirs.lines == data);
        self.tally(agrees, "our line data", code);
        Ok(agrees)
    }

    /// `PYCOV_DEBUG=linedata`: counts a check of `what` pycov wrote for
    /// `code`; says so on stderr when it failed.
    fn tally(&self, agrees: bool, what: &str, code: &Bound<'_, PyAny>) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        if !agrees {
            self.differed.fetch_add(1, Ordering::Relaxed);
            eprintln!("pycov: linedata: {what} differs from CPython's for {code}");
        }
    }

    /// Turns on `LINE` events for `code` and off again; returns the
    /// instrumentation they left in between.
    fn instrumented_by_cpython(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Instrumented>> {
        let set_local_events = self.set_local_events.bind(py);
        set_local_events.call1((self.tool_id, code, 1u32 << LINE_EVENT_INDEX))?;
        let seen = self.instrumentation(code);
        set_local_events.call1((self.tool_id, code, 0))?;
        Ok(seen)
    }

    fn instrumentation(&self, code: &Bound<'_, PyAny>) -> Option<Instrumented> {
        ffi::with_line_instrumentation(code, self.local_events, |view| {
            ffi::with_monitors(code, self.local_events, |monitors| Instrumented {
                lines: view.lines.to_vec(),
                live: view.live.to_vec(),
                local: monitors.local[..INSTRUMENTED_EVENTS].to_vec(),
                active: monitors.active[..INSTRUMENTED_EVENTS].to_vec(),
                version: *monitors.version,
            })
        })
        .flatten()
    }

    fn tool_bit(&self) -> u8 {
        1 << self.tool_id
    }

    /// The bookkeeping pycov alone gives code, read off `code`, which CPython
    /// has just brought up to date; `None` unless the only global event is
    /// our `PY_START` (or none) and `code` has local events of ours alone.
    pub(crate) fn baseline(&self, code: &Bound<'_, PyAny>) -> Option<Baseline> {
        let bit = self.tool_bit();
        ffi::with_monitors(code, self.local_events, |monitors| {
            if *monitors.version == 0 {
                return None;
            }
            let mut globals = Vec::with_capacity(INSTRUMENTED_EVENTS);
            let (local, active) = (&monitors.local, &monitors.active);
            let events = local.iter().zip(active.iter()).take(INSTRUMENTED_EVENTS);
            for (event, (&local, &active)) in events.enumerate() {
                let global = active & !local;
                let allowed = if event == PY_START_EVENT_INDEX {
                    bit
                } else {
                    0
                };
                if local & !bit != 0 || global & !allowed != 0 {
                    return None;
                }
                globals.push(global);
            }
            Some(Baseline {
                version: *monitors.version,
                globals,
            })
        })
        .flatten()
    }

    /// Turns on our `LINE` events for `code`, which CPython has never
    /// instrumented, the way CPython would but without it (its two sweeps of
    /// the bytecode were two thirds of what turning the events on cost): the
    /// line data, `INSTRUMENTED_LINE` at each line start, superinstructions
    /// split (3.12), and the bookkeeping brought up to `baseline`, so that
    /// CPython finds nothing to do when the code first runs. `PY_START` stays
    /// off, as after a callback returned `DISABLE` there: only for code whose
    /// file pycov has decided, whose `PY_START` callback would do nothing
    /// else. Returns whether it did; if not, `LINE` events are still off.
    pub(crate) fn install_ahead(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        table: &Bound<'_, PyBytes>,
        baseline: &Baseline,
    ) -> PyResult<bool> {
        if !self.ahead_checked(py) {
            return Ok(false);
        }
        self.instrument_ahead(py, code, table, baseline)
    }

    fn instrument_ahead(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        table: &Bound<'_, PyBytes>,
        baseline: &Baseline,
    ) -> PyResult<bool> {
        // Code CPython has never instrumented has no monitoring data.
        if ffi::monitoring_pointers(code, self.local_events)
            != Some(ffi::MonitoringPointers::default())
        {
            return Ok(false);
        }
        // Has CPython allocate the monitoring data and nothing else: the
        // events for our tool are none already.
        self.set_local_events.call1(py, (self.tool_id, code, 0))?;
        // Made first: it runs Python code, which nothing may between the
        // sweep and the writes.
        let twin = if self.checking {
            let twin = code.call_method0(intern!(py, "replace"))?;
            self.instrumented_by_cpython(py, &twin)?
        } else {
            None
        };
        let Some(data) = self.compute(py, code, table, Bytecode::Live)? else {
            return Ok(false);
        };
        if !ffi::install_line_data(code, self.local_events, &data) {
            return Ok(false);
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        let done = ffi::with_line_instrumentation(code, self.local_events, |view| {
            ffi::with_monitors(code, self.local_events, |monitors| {
                self.instrument_fresh(view, monitors, baseline)
            })
        })
        .flatten()
            == Some(true);
        if done {
            self.instrumented_ahead.fetch_add(1, Ordering::Relaxed);
        }
        if self.checking {
            let ours = self.instrumentation(code);
            let agrees = done && self.same_but_py_start(ours.as_ref(), twin.as_ref());
            self.tally(agrees, "our instrumentation", code);
        }
        Ok(done)
    }

    /// Writes what [`LineData::install_ahead`] describes into `view` and
    /// `monitors`; the line data in `view` is ours, computed from the live
    /// bytecode just now. Writes nothing unless the code was never
    /// instrumented.
    fn instrument_fresh(
        &self,
        view: LineInstrumentation<'_>,
        monitors: Monitors<'_>,
        baseline: &Baseline,
    ) -> bool {
        let LineInstrumentation {
            live,
            lines,
            line_tools,
            ..
        } = view;
        let Monitors {
            version,
            local,
            active,
        } = monitors;
        let (local, active) = (
            &mut local[..INSTRUMENTED_EVENTS],
            &mut active[..INSTRUMENTED_EVENTS],
        );
        if *version != 0
            || local.iter().chain(&*active).any(|&tools| tools != 0)
            || line_tools.is_some()
            || baseline.globals.len() != active.len()
        {
            return false;
        }
        // What CPython does to code never instrumented, with `LINE` the
        // only event to add: `INSTRUMENTED_LINE` at each line start (the
        // data marks instructions' first units alone, with the base opcode
        // of what is there), and on 3.12 every superinstruction split first.
        // Other instructions stay, specialized or not.
        let (units, _) = live.as_chunks_mut::<2>();
        if self.splits_superinstructions {
            let mut unit = 0;
            while let (Some(code_unit), Some(entry)) = (units.get_mut(unit), lines.get(unit)) {
                let info = self.opcodes[usize::from(code_unit[0])];
                if entry[0] != 0 {
                    code_unit[0] = self.instrumented_line;
                } else if info.split {
                    code_unit[0] = info.base;
                }
                unit += usize::from(info.length);
            }
        } else {
            for (code_unit, entry) in units.iter_mut().zip(&*lines) {
                if entry[0] != 0 {
                    code_unit[0] = self.instrumented_line;
                }
            }
        }
        local[LINE_EVENT_INDEX] = self.tool_bit();
        active.copy_from_slice(&baseline.globals);
        active[LINE_EVENT_INDEX] |= self.tool_bit();
        *version = baseline.version;
        true
    }

    /// Whether `ours` (instrumented ahead) is `theirs` (by CPython), but for
    /// `PY_START`, which CPython instruments and we leave as after `DISABLE`.
    fn same_but_py_start(
        &self,
        ours: Option<&Instrumented>,
        theirs: Option<&Instrumented>,
    ) -> bool {
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            return false;
        };
        let same_code = ours.live.len() == theirs.live.len()
            && ours
                .live
                .iter()
                .zip(&theirs.live)
                .enumerate()
                .all(|(at, (&our, &their))| {
                    our == their
                        || (at % 2 == 0 && our == self.resume && their == self.instrumented_resume)
                });
        same_code
            && ours.lines == theirs.lines
            && ours.local == theirs.local
            && ours.active == theirs.active
            && ours.version == theirs.version
    }

    /// Whether instrumenting ahead may be used; checks first if nobody has.
    /// Never waits: while another thread checks, the answer is no.
    fn ahead_checked(&self, py: Python<'_>) -> bool {
        match self.ahead.compare_exchange(
            AHEAD_UNCHECKED,
            AHEAD_CHECKING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                let ok = self.check_ahead(py);
                let state = if ok { AHEAD_USED } else { AHEAD_UNUSED };
                self.ahead.store(state, Ordering::Release);
                ok
            }
            Err(state) => state == AHEAD_USED,
        }
    }

    /// Whether instrumenting ahead gives every code object of [`PROBE`] what
    /// CPython gives a copy of it (but for `PY_START`), with the bookkeeping
    /// read off that copy.
    fn check_ahead(&self, py: Python<'_>) -> bool {
        let check = || -> PyResult<bool> {
            let (theirs, ours) = (probe_code(py)?, probe_code(py)?);
            if theirs.len() < 7 || theirs.len() != ours.len() {
                return Ok(false);
            }
            let set_local_events = self.set_local_events.bind(py);
            for (their_code, our_code) in theirs.iter().zip(&ours) {
                // As in `enable_nested`: the baseline read off code CPython
                // has just given our `LINE` events.
                set_local_events.call1((self.tool_id, their_code, 1u32 << LINE_EVENT_INDEX))?;
                let (cpython, baseline) =
                    (self.instrumentation(their_code), self.baseline(their_code));
                set_local_events.call1((self.tool_id, their_code, 0))?;
                let (Some(cpython), Some(baseline)) = (cpython, baseline) else {
                    return Ok(false);
                };
                let table = crate::util::line_table_bytes(py, our_code)?;
                if !self.instrument_ahead(py, our_code, &table, &baseline)? {
                    return Ok(false);
                }
                let ours = self.instrumentation(our_code);
                set_local_events.call1((self.tool_id, our_code, 0))?;
                if !self.same_but_py_start(ours.as_ref(), Some(&cpython)) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        check().unwrap_or_else(|err| {
            if self.checking {
                eprintln!("pycov: linedata: checking instrumentation ahead failed: {err}");
            }
            false
        })
    }

    /// `PYCOV_DEBUG=linedata`: how many code objects got data written ahead,
    /// and what checking them found.
    pub(crate) fn report(&self) {
        if self.checking {
            eprintln!(
                "pycov: linedata: written ahead for {} code objects ({} instrumented ahead); {} checked against CPython, {} differed",
                self.written.load(Ordering::Relaxed),
                self.instrumented_ahead.load(Ordering::Relaxed),
                self.checked.load(Ordering::Relaxed),
                self.differed.load(Ordering::Relaxed),
            );
        }
    }

    /// The data for `code`, from its bytecode, line table and exception
    /// table; `None` if they do not fit together. The base opcodes come from
    /// the bytecode `from` says: the live bytecode serves while it holds no
    /// specialized instruction yet, `co_code` costs a copy of the bytecode.
    fn compute(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        table: &Bound<'_, PyBytes>,
        from: Bytecode,
    ) -> PyResult<Option<Vec<[u8; 2]>>> {
        let exceptions = code
            .getattr(intern!(py, "co_exceptiontable"))?
            .cast_into::<PyBytes>()?;
        let first_line = crate::util::first_line(py, code)?;
        let Some(first_traceable) = ffi::first_traceable(code) else {
            return Ok(None);
        };
        let program = Program {
            line_table: table.as_bytes(),
            first_line,
            first_traceable,
            exceptions: exceptions.as_bytes(),
        };
        let from_live = (from != Bytecode::Base)
            .then(|| ffi::with_adaptive_code(code, |live| self.compute_from(live, &program)))
            .flatten()
            .flatten();
        if from_live.is_some() || from == Bytecode::Live {
            return Ok(from_live);
        }
        let base = code
            .getattr(intern!(py, "co_code"))?
            .cast_into::<PyBytes>()?;
        Ok(self.compute_from(base.as_bytes(), &program))
    }

    /// CPython's `initialize_lines()` (3.12 and 3.13): per code unit, the
    /// opcode a line start stands for (0 elsewhere) and its line delta.
    /// `code` is the bytecode, live or `co_code`; `None` if it holds an
    /// opcode pycov does not know there.
    fn compute_from(&self, code: &[u8], program: &Program<'_>) -> Option<Vec<[u8; 2]>> {
        let Program {
            line_table,
            first_line,
            first_traceable,
            exceptions,
        } = *program;
        let (code, _) = code.as_chunks::<2>();
        let units = code.len();
        if first_traceable >= units {
            return None;
        }
        let base_at = |unit: usize| -> Option<u8> {
            let info = self.opcodes[usize::from(code.get(unit)?[0])];
            (info.base != 0).then_some(info.base)
        };
        // Inline cache entries keep this; instructions are written below.
        let mut data = vec![[0u8, NO_LINE as u8]; units];
        data[..first_traceable].fill([0, BEFORE_TRACEABLE as u8]);
        let opcodes = &self.opcodes;
        let computed_line = self.computed_line;
        let computed_line_start = self.computed_line_start.unwrap_or(computed_line);
        // One sweep, along the line table's entries (as CPython's
        // `_PyCode_CheckLineNumber()` walks them), sets every instruction's
        // delta and marks the line starts, noting jump targets; those are
        // marked after it, as CPython's second sweep does. This runs for
        // every code object at its first call, so the common instruction
        // (no line start, no jump) takes the short path.
        let (slots, code) = (&mut data[..units], &code[..units]);
        let mut targets = Vec::new();
        let mut current_line = -1i64;
        let mut extended = 0usize;
        let mut unit = first_traceable;
        let mut entry_end = 0usize;
        for (entry_units, line) in pycov_analysis::linetable::Entries::new(line_table, first_line) {
            entry_end = (entry_end + entry_units).min(units);
            let Some(line) = line.filter(|&line| line >= 0) else {
                // No line: the instructions keep `NO_LINE`; none starts a line.
                while unit < entry_end {
                    let [opcode, arg] = code[unit];
                    let info = opcodes[usize::from(opcode)];
                    if info.base == 0 {
                        return None;
                    }
                    if info.may_start_line {
                        current_line = -1;
                    }
                    unit += usize::from(info.length);
                    extended = match info.oparg {
                        OpargUse::Ignored => 0,
                        kind => note_target(kind, extended, arg, unit, &mut targets)?,
                    };
                }
                continue;
            };
            // CPython's `compute_line_delta()`: the distance from the line
            // predicted at `unit` (`first_line + (unit >> OFFSET_SHIFT)`) if
            // it fits, else `computed_line`.
            let line_offset = line - first_line;
            let fits = |distance: i64| {
                distance > i64::from(computed_line) && distance <= i64::from(i8::MAX)
            };
            while unit < entry_end {
                let [opcode, arg] = code[unit];
                let info = opcodes[usize::from(opcode)];
                if info.base == 0 {
                    return None;
                }
                let distance = line_offset - (unit >> OFFSET_SHIFT) as i64;
                let mut delta = if fits(distance) {
                    distance as i8
                } else {
                    computed_line
                };
                let mut original = 0;
                if info.may_start_line {
                    if line != current_line {
                        original = info.base;
                        if delta == computed_line {
                            delta = computed_line_start;
                        }
                    }
                    current_line = line;
                }
                slots[unit] = [original, delta as u8];
                unit += usize::from(info.length);
                extended = match info.oparg {
                    OpargUse::Ignored => 0,
                    kind => note_target(kind, extended, arg, unit, &mut targets)?,
                };
            }
        }
        if unit < units {
            // The line table ends before the bytecode.
            return None;
        }
        for target in targets {
            let target_op = base_at(target)?;
            let entry = &mut data[target];
            if entry[1] as i8 != NO_LINE {
                entry[0] = target_op;
                if Some(entry[1] as i8) == self.computed_line_start {
                    entry[1] = self.computed_line as u8;
                }
            }
        }
        let mut scan = exceptions.iter().copied();
        let mut varint = || -> Option<usize> {
            let mut byte = scan.next()?;
            let mut value = usize::from(byte & 63);
            while byte & 64 != 0 {
                byte = scan.next()?;
                value = (value << 6) | usize::from(byte & 63);
            }
            Some(value)
        };
        while let Some(_start) = varint() {
            let (_size, handler, _depth) = (varint()?, varint()?, varint()?);
            let op = base_at(handler)?;
            let entry = &mut data[handler];
            if entry[1] as i8 != NO_LINE && op != self.end_async_for {
                entry[0] = op;
            }
        }
        Some(data)
    }
}

/// The code objects of a fresh copy of [`PROBE`], which never ran.
/// Compiled, not run: no bytecode runs (which could hand the GIL over, or
/// take a `KeyboardInterrupt`, inside a `sys.monitoring` callback).
fn probe_code(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyAny>>> {
    let source = PROBE.replace("    # FAR\n", &"\n".repeat(150));
    let module = py
        .import("builtins")?
        .getattr("compile")?
        .call1((source, "<probe>", "exec"))?;
    let mut codes = Vec::new();
    let mut stack = crate::util::nested_code_objects(&module)?;
    while let Some(code) = stack.pop() {
        stack.extend(crate::util::nested_code_objects(&code)?);
        codes.push(code);
    }
    Ok(codes)
}

/// For an instruction that uses its argument `arg` (see [`OpargUse`]),
/// `next` being the unit after it: notes its jump target, and returns the
/// high bits the next instruction's argument gets (`EXTENDED_ARG`), or
/// `None` if a backward jump leaves the code.
#[inline]
fn note_target(
    kind: OpargUse,
    extended: usize,
    arg: u8,
    next: usize,
    targets: &mut Vec<usize>,
) -> Option<usize> {
    let oparg = (extended << 8) | usize::from(arg);
    match kind {
        OpargUse::Ignored => {}
        OpargUse::Extends => return Some(oparg),
        OpargUse::Forward => targets.push(next + oparg),
        OpargUse::PastEnd => targets.push(next + oparg + 1),
        OpargUse::Backward => targets.push(next.checked_sub(oparg)?),
    }
    Some(0)
}
