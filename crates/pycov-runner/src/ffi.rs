//! Every raw CPython call of the runner: the native `sys.monitoring`
//! callbacks, the C-level trace function for 3.11, the per-code-object cache
//! in `co_extra`, the bytecode and `sys.monitoring` data that `tidy` rewrites, and
//! printing exceptions the way the interpreter does.
//!
//! The callbacks are plain `extern "C"` functions: a `LINE` event costs one
//! vectorcall into Rust, a `co_extra` read and an atomic OR.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::{Borrowed, PyErr};

use crate::session::Session;

/// The session callbacks report to; null when no measurement is running.
static ACTIVE: AtomicPtr<Session> = AtomicPtr::new(ptr::null_mut());

/// Makes `session` the target of the callbacks. Sessions are never freed
/// (see [`active_session`]), hence `'static`.
pub(crate) fn activate(session: &'static Session) {
    ACTIVE.store((session as *const Session).cast_mut(), Ordering::Release);
}

/// Stops the callbacks from reaching any session.
pub(crate) fn deactivate() {
    ACTIVE.store(ptr::null_mut(), Ordering::Release);
}

fn active_session() -> Option<&'static Session> {
    let session = ACTIVE.load(Ordering::Acquire);
    // SAFETY: `activate` only stores `'static` references (sessions are
    // leaked, not freed: a callback on another thread may still hold one when
    // the run ends, since callbacks run Python code that can release the GIL).
    unsafe { session.as_ref() }
}

/// The `co_extra` slot pycov caches its per-code-object decision in.
pub(crate) fn code_extra_index() -> Option<isize> {
    static INDEX: OnceLock<isize> = OnceLock::new();
    let index = *INDEX.get_or_init(|| {
        // SAFETY: called with the GIL held (from `Session::new`); the values
        // we store are integers, so there is nothing to free.
        unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(keep_extra) }
    });
    (index >= 0).then_some(index)
}

/// `co_extra` free function: our values are integers, not allocations.
unsafe extern "C" fn keep_extra(_extra: *mut c_void) {}

/// The cached value for `code` (0 if none).
#[inline]
fn get_extra(code: *mut ffi::PyObject, index: isize) -> usize {
    let mut extra: *mut c_void = ptr::null_mut();
    // SAFETY: `code` is a live code object passed by the interpreter and the
    // GIL is held; `extra` is a valid out-pointer.
    let status = unsafe { ffi::PyUnstable_Code_GetExtra(code, index, &mut extra) };
    if status != 0 {
        // SAFETY: GIL held; an error is set only if `code` was not a code object.
        unsafe { ffi::PyErr_Clear() };
        return 0;
    }
    extra as usize
}

/// Caches `value` for `code`.
pub(crate) fn set_extra(code: &Bound<'_, PyAny>, index: isize, value: usize) {
    // SAFETY: `code` is a live object and the GIL is held (bound); the value is
    // an integer stored in a pointer-sized slot that CPython never
    // dereferences because no free function was registered.
    let status =
        unsafe { ffi::PyUnstable_Code_SetExtra(code.as_ptr(), index, value as *mut c_void) };
    if status != 0 {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
    }
}

/// The cached value for a bound code object (0 if none).
pub(crate) fn extra_of(code: &Bound<'_, PyAny>, index: isize) -> usize {
    get_extra(code.as_ptr(), index)
}

/// A `PyMethodDef` the interpreter may read from any thread.
struct MethodDef(UnsafeCell<ffi::PyMethodDef>);

// SAFETY: the definitions are never written after construction; CPython only
// reads them.
unsafe impl Sync for MethodDef {}

impl MethodDef {
    const fn fastcall(name: &'static std::ffi::CStr, f: ffi::PyCFunctionFast) -> MethodDef {
        MethodDef(UnsafeCell::new(ffi::PyMethodDef {
            ml_name: name.as_ptr() as *const c_char,
            ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
            ml_flags: ffi::METH_FASTCALL,
            ml_doc: ptr::null(),
        }))
    }

    fn new_function<'py>(&'static self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: the definition is 'static; a null self and module are allowed.
        unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyCFunction_NewEx(self.0.get(), ptr::null_mut(), ptr::null_mut()),
            )
        }
    }
}

static PY_START: MethodDef = MethodDef::fastcall(c"pycov_py_start", py_start_callback);
static LINE: MethodDef = MethodDef::fastcall(c"pycov_line", line_callback);
static INSTRUCTION: MethodDef = MethodDef::fastcall(c"pycov_instruction", instruction_callback);
static THREAD_START: MethodDef = MethodDef::fastcall(c"pycov_thread_start", thread_start_callback);

/// The native `sys.monitoring` `PY_START` callback.
pub(crate) fn py_start_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    PY_START.new_function(py)
}

/// The native `sys.monitoring` `LINE` callback.
pub(crate) fn line_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    LINE.new_function(py)
}

/// The native `sys.monitoring` `INSTRUCTION` callback.
pub(crate) fn instruction_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    INSTRUCTION.new_function(py)
}

/// A callable for `threading.settrace` that installs the C trace function in
/// each new thread.
pub(crate) fn thread_start_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    THREAD_START.new_function(py)
}

/// New reference to the callbacks' return value (`sys.monitoring.DISABLE`
/// while monitoring, else `None`).
fn disable_result(session: Option<&Session>) -> *mut ffi::PyObject {
    let result = session
        .and_then(Session::disable_object)
        // SAFETY: `Py_None` is always valid.
        .unwrap_or_else(|| unsafe { ffi::Py_None() });
    // SAFETY: GIL held; `result` is a live object we return a new reference to.
    unsafe { ffi::Py_IncRef(result) };
    result
}

unsafe extern "C" fn py_start_callback(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let session = active_session();
    if let Some(session) = session {
        crate::tidy::restart_if_due();
        // SAFETY: the interpreter calls us with the GIL held.
        let py = unsafe { Python::assume_attached() };
        if nargs >= 1 {
            // SAFETY: `args` holds `nargs` borrowed references, valid for the call.
            let code_ptr = unsafe { *args };
            let index = session.extra_index();
            if !session.is_decided(get_extra(code_ptr, index)) {
                // SAFETY: `code_ptr` is a borrowed reference alive for this call.
                let code = unsafe { Borrowed::from_ptr(py, code_ptr) };
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    session.on_code_start(py, &code, None);
                }));
            }
        }
        let _ = std::panic::catch_unwind(|| crate::tidy::pass_if_due(py));
    }
    disable_result(session)
}

/// The code object and integer (line or offset) a `LINE` or `INSTRUCTION`
/// callback receives; a failed conversion gives -1, which records nothing.
///
/// # Safety
/// `args` must hold `nargs` borrowed references, with the GIL held.
unsafe fn code_and_number(
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> Option<(*mut ffi::PyObject, isize)> {
    if nargs < 2 {
        return None;
    }
    // SAFETY: the caller guarantees `args` holds `nargs` (>= 2) references.
    let (code, number) = unsafe { (*args, *args.add(1)) };
    // SAFETY: `number` is an int object; GIL held.
    let number = unsafe { ffi::PyLong_AsSsize_t(number) };
    if number == -1 {
        // SAFETY: GIL held; clears a conversion error if there was one.
        unsafe { ffi::PyErr_Clear() };
    }
    Some((code, number))
}

unsafe extern "C" fn line_callback(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let session = active_session();
    if let Some(session) = session {
        // SAFETY: the interpreter passes `nargs` borrowed references, GIL held.
        if let Some((code, line)) = unsafe { code_and_number(args, nargs) } {
            session.record(
                get_extra(code, session.extra_index()),
                line as std::ffi::c_long,
            );
        }
    }
    disable_result(session)
}

unsafe extern "C" fn instruction_callback(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let session = active_session();
    if let Some(session) = session {
        // SAFETY: the interpreter passes `nargs` borrowed references, GIL held.
        if let Some((code, offset)) = unsafe { code_and_number(args, nargs) } {
            session.record_instruction(code as usize, offset);
        }
    }
    disable_result(session)
}

unsafe extern "C" fn thread_start_callback(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // Python-level trace function, called by `sys.settrace`'s trampoline as
    // `f(frame, event, arg)`: when a thread starts, or after a program put
    // pycov back with `sys.settrace(sys.gettrace())`. A "call" switches the
    // thread to the C function; "line" events reach us for frames whose
    // `f_trace` we set. Returning ourselves keeps us as the frame's `f_trace`.
    // SAFETY: `args` holds `nargs` borrowed references; the type checks make
    // the calls below safe whoever calls us (`sys.gettrace()` returns us, so
    // user code can, with any arguments).
    let typed = nargs >= 2
        && unsafe { ffi::PyFrame_Check(*args) != 0 && ffi::PyUnicode_Check(*args.add(1)) != 0 };
    if active_session().is_some() && typed {
        // SAFETY: the trampoline (or any Python caller) holds the GIL.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: checked above: a frame and a str, borrowed for the call.
        let (frame, event) = unsafe { (*args, *args.add(1)) };
        // SAFETY: `event` is a str; the comparison returns 0 on equality.
        let is = |name: &std::ffi::CStr| unsafe {
            ffi::PyUnicode_CompareWithASCIIString(event, name.as_ptr()) == 0
        };
        let what = if is(c"call") {
            // An error here (already fetched by PyO3) only means the thread
            // stays on the trampoline, which reaches us anyway.
            let _ = install_trace_function(py);
            Some(ffi::PyTrace_CALL)
        } else if is(c"line") {
            Some(ffi::PyTrace_LINE)
        } else {
            None
        };
        if let Some(what) = what {
            // SAFETY: as for any trace event: GIL held, live frame.
            unsafe { trace_function(ptr::null_mut(), frame.cast(), what, ptr::null_mut()) };
        }
        if let Some(object) = TRACE_OBJECT.get(py) {
            let object = object.as_ptr();
            // SAFETY: GIL held; we return a new reference to a live object.
            unsafe { ffi::Py_IncRef(object) };
            return object;
        }
    }
    // SAFETY: `Py_None` is always valid; we return a new reference.
    unsafe {
        let none = ffi::Py_None();
        ffi::Py_IncRef(none);
        none
    }
}

/// The object installed with the C trace function (see
/// [`install_trace_function`]).
static TRACE_OBJECT: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// Installs the C trace function on the calling thread.
///
/// The trace object is our thread-start callable, so `sys.gettrace()`
/// returns it and a program that saves and restores the trace function
/// (doctest, debuggers) re-installs pycov through `sys.settrace` instead of
/// removing it.
pub(crate) fn install_trace_function(py: Python<'_>) -> PyResult<()> {
    let object =
        TRACE_OBJECT.get_or_try_init(py, || Ok::<_, PyErr>(thread_start_function(py)?.unbind()))?;
    // SAFETY: GIL held; `PyEval_SetTrace` keeps its own reference to the
    // object, which also lives in the static.
    unsafe { ffi::PyEval_SetTrace(Some(trace_function), object.as_ptr()) };
    Ok(())
}

/// Removes any trace function from the calling thread.
pub(crate) fn remove_trace_function() {
    // SAFETY: called with the GIL held.
    unsafe { ffi::PyEval_SetTrace(None, ptr::null_mut()) };
}

unsafe extern "C" fn trace_function(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    let Some(session) = active_session() else {
        // Measurement ended while this thread kept running: step aside.
        remove_trace_function();
        return 0;
    };
    if what != ffi::PyTrace_LINE && what != ffi::PyTrace_CALL {
        return 0;
    }
    // SAFETY: the interpreter passes a live frame; `PyFrame_GetCode` returns a
    // new reference that we release below.
    let code = unsafe { ffi::PyFrame_GetCode(frame) }.cast::<ffi::PyObject>();
    if code.is_null() {
        return 0;
    }
    let extra = get_extra(code, session.extra_index());
    if what == ffi::PyTrace_LINE {
        // SAFETY: live frame, GIL held.
        let line = unsafe { ffi::PyFrame_GetLineNumber(frame) };
        session.record(extra, i64::from(line) as std::ffi::c_long);
    } else {
        // SAFETY: the interpreter calls trace functions with the GIL held.
        let py = unsafe { Python::assume_attached() };
        let measured = if session.is_decided(extra) {
            session.is_measured(extra)
        } else {
            // SAFETY: `code` and `frame` are live references for this call.
            let (code, frame) = unsafe {
                (
                    Borrowed::from_ptr(py, code),
                    Borrowed::from_ptr(py, frame.cast::<ffi::PyObject>()),
                )
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session.on_code_start(py, &code, Some(&frame))
            }))
            .unwrap_or(false)
        };
        let (name, value) = if measured {
            // Like coverage.py's CTracer: with our callable as the frame's
            // `f_trace`, this frame's lines still reach us if the program
            // re-installs the trace function with `sys.settrace`.
            (
                intern!(py, "f_trace"),
                TRACE_OBJECT.get(py).map(|o| o.as_ptr()),
            )
        } else {
            // No line events for code we do not measure.
            // SAFETY: `Py_False` is always valid.
            (
                intern!(py, "f_trace_lines"),
                Some(unsafe { ffi::Py_False() }),
            )
        };
        if let Some(value) = value {
            // SAFETY: live frame object, interned name and value; GIL held.
            let status = unsafe { ffi::PyObject_SetAttr(frame.cast(), name.as_ptr(), value) };
            if status != 0 {
                // SAFETY: GIL held.
                unsafe { ffi::PyErr_Clear() };
            }
        }
    }
    // SAFETY: releases the reference from `PyFrame_GetCode`.
    unsafe { ffi::Py_DecRef(code) };
    0
}

/// A tidying pass (see `tidy`) for the active session, if any.
pub(crate) fn tidy_for_active_session(py: Python<'_>) {
    if let Some(session) = active_session() {
        session.tidy_running_code(py);
    }
}

/// Whether `object` is immortal (3.12+): shared by every interpreter, as
/// the code objects of deep-frozen standard modules are.
pub(crate) fn is_immortal(object: &Bound<'_, PyAny>) -> bool {
    // Immortal objects keep a negative low half of the count.
    // SAFETY: a live object (bound), GIL held.
    (unsafe { ffi::Py_REFCNT(object.as_ptr()) } as i32) < 0
}

/// A code object running on some thread, with the globals of (one of) the
/// frames running it.
pub(crate) struct RunningCode<'py> {
    pub code: Bound<'py, PyAny>,
    pub globals: Option<Bound<'py, PyAny>>,
}

/// The code objects of the top `per_thread` frames of each thread of the
/// main interpreter, each once, found without running Python code or
/// raising audit events. Immortal code objects are left out: other
/// interpreters, with GILs of their own, may be running them.
pub(crate) fn running_code_objects(py: Python<'_>, per_thread: usize) -> Vec<RunningCode<'_>> {
    let mut seen = std::collections::HashSet::new();
    let mut codes = Vec::new();
    // SAFETY: the GIL is held (we have `py`), so the thread states of the
    // main interpreter stay linked while we walk them: Python threads delete
    // their own state holding the GIL (a C extension could delete another
    // thread's state without it, which the interpreter's own walks through
    // `PyInterpreterState_ThreadHead` would not survive either). Every frame
    // and code pointer (and globals, unless null) comes with a new
    // reference, which we release or hand to a `Bound`.
    unsafe {
        let mut thread = ffi::PyInterpreterState_ThreadHead(ffi::PyInterpreterState_Main());
        while !thread.is_null() {
            let mut frame = ffi::PyThreadState_GetFrame(thread);
            let mut depth = 0;
            while !frame.is_null() && depth < per_thread {
                let code = Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame).cast());
                if !is_immortal(&code) && seen.insert(code.as_ptr() as usize) {
                    let globals = ffi::PyFrame_GetGlobals(frame);
                    let globals = (!globals.is_null()).then(|| Bound::from_owned_ptr(py, globals));
                    codes.push(RunningCode { code, globals });
                }
                let back = ffi::PyFrame_GetBack(frame);
                ffi::Py_DecRef(frame.cast());
                frame = back;
                depth += 1;
            }
            if !frame.is_null() {
                ffi::Py_DecRef(frame.cast());
            }
            thread = ffi::PyThreadState_Next(thread);
        }
        // A frame object that could not be made (no memory) ends that walk.
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
        }
    }
    codes
}

/// Runs `f` on the adaptive bytecode of `code` (`_co_code_adaptive`: two
/// bytes per code unit, as the interpreter executes them). `None` unless
/// `code` is exactly a code object stored that way.
///
/// `f` must not run Python code: another thread could execute the bytes it
/// is changing.
pub(crate) fn with_adaptive_code<R>(
    code: &Bound<'_, PyAny>,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Option<R> {
    if !code.is_exact_instance_of::<pyo3::types::PyCode>() {
        return None;
    }
    let object = code.as_ptr();
    // SAFETY: `object` is a live code object (checked above) and the GIL is
    // held. A code object is a variable-size object whose items, the code
    // units, start at the type's basic size (`PyCode_Type` declares
    // `offsetof(PyCodeObject, co_code_adaptive)` and `sizeof(_Py_CODEUNIT)`);
    // `OpcodeTable::for_interpreter` and `LineTidy::for_interpreter` check
    // this on probe functions before anything is written. With the GIL held
    // and `f` running no Python code, nothing else touches the bytes.
    unsafe {
        let code_type = ffi::Py_TYPE(object);
        if (*code_type).tp_itemsize != 2 {
            return None;
        }
        let offset = usize::try_from((*code_type).tp_basicsize).ok()?;
        let units = usize::try_from(ffi::Py_SIZE(object)).ok()?;
        let bytes = std::slice::from_raw_parts_mut(object.cast::<u8>().add(offset), units * 2);
        Some(f(bytes))
    }
}

/// `PY_MONITORING_EVENT_PY_START`: the index of `PY_START` among the events.
pub(crate) const PY_START_EVENT_INDEX: usize = 0;
/// `PY_MONITORING_EVENT_LINE`: the index of `LINE` among the events.
pub(crate) const LINE_EVENT_INDEX: usize = 5;
/// `PY_MONITORING_INSTRUMENTED_EVENTS`: the events that instrument bytecode
/// come first. CPython reads a code object's tool sets for these alone;
/// 3.12 leaves whatever its stack held in the rest of the active set.
pub(crate) const INSTRUMENTED_EVENTS: usize = 10;

/// How many events a code object's tool sets cover
/// (`_PY_MONITORING_LOCAL_EVENTS`): 15 on 3.12, 10 on 3.13.
pub(crate) fn local_event_count(py: Python<'_>) -> usize {
    if py.version_info() >= (3, 13) {
        10
    } else {
        15
    }
}

/// Where pointer `index` of a `_PyCoMonitoringData` lies (0: `tools`,
/// 1: `lines`, ...): after the local and the active tool sets.
fn monitoring_slot(local_events: usize, index: usize) -> usize {
    let pointer = std::mem::size_of::<*mut u8>();
    (2 * local_events).next_multiple_of(std::mem::align_of::<*mut u8>()) + pointer * index
}

/// The `LINE` instrumentation of one code object, as CPython 3.12/3.13 keep
/// it (see `tidy`).
pub(crate) struct LineInstrumentation<'a> {
    /// The adaptive bytecode (see [`with_adaptive_code`]).
    pub live: &'a mut [u8],
    /// Per code unit: the opcode `INSTRUMENTED_LINE` stands for there (0
    /// where no line starts), and a line delta.
    pub lines: &'a mut [[u8; 2]],
    /// Per code unit: the tools its line start reports to, when more than
    /// one tool uses `LINE` events on this code.
    pub line_tools: Option<&'a mut [u8]>,
    /// The tools with `LINE` events set on this code object itself.
    pub local_line_tools: u8,
    /// The tools with `LINE` events in effect on it.
    pub active_line_tools: u8,
    /// The code unit where tracing starts (`_co_firsttraceable`).
    pub first_traceable: usize,
}

/// Where `_co_instrumentation_version`, `_co_monitoring` and
/// `_co_firsttraceable` lie in a 3.12/3.13 code object, counted back from
/// its code units (see [`with_line_instrumentation`] and [`with_monitors`]).
const VERSION_BEFORE_CODE: usize = 32;
const MONITORING_BEFORE_CODE: usize = 24;
const FIRST_TRACEABLE_BEFORE_CODE: usize = 16;

/// A code object's `sys.monitoring` bookkeeping (3.12/3.13).
pub(crate) struct Monitors<'a> {
    /// `_co_instrumentation_version`: the interpreter's instrumentation
    /// version the code was last brought up to (0: never).
    pub version: &'a mut u64,
    /// Per local event, the tools with events set on this code object.
    pub local: &'a mut [u8],
    /// Per local event, the tools whose events its bytecode is
    /// instrumented for (global and local ones).
    pub active: &'a mut [u8],
}

/// Runs `f` on the bookkeeping of `code`; `None` unless it is a code object
/// with `sys.monitoring` data. On 3.12/3.13 `_co_instrumentation_version`
/// (eight bytes, `uint64_t` or `uintptr_t`) is the field before
/// `_co_monitoring` (see [`with_line_instrumentation`]), which points to the
/// local and then the active tool set of each of `local_events` events.
///
/// `f` must not run Python code; it may be called inside
/// [`with_line_instrumentation`], whose memory this leaves alone.
pub(crate) fn with_monitors<R>(
    code: &Bound<'_, PyAny>,
    local_events: usize,
    f: impl FnOnce(Monitors<'_>) -> R,
) -> Option<R> {
    let monitoring = monitoring_data(code)?;
    if monitoring.is_null() {
        return None;
    }
    let version = field_before_code(code, VERSION_BEFORE_CODE)?;
    // SAFETY: `version` is `_co_instrumentation_version`, eight bytes at an
    // offset that is a multiple of eight (the basic size is), within the
    // code object; a non-null `_co_monitoring` points to CPython's
    // `_PyCoMonitoringData`, which starts with the two tool sets. None of
    // this memory overlaps the code units or the line data, the GIL is held
    // and `f` runs no Python code.
    unsafe {
        let (local, active) =
            std::slice::from_raw_parts_mut(monitoring, 2 * local_events).split_at_mut(local_events);
        Some(f(Monitors {
            version: &mut *version.cast::<u64>(),
            local,
            active,
        }))
    }
}

/// The address of the field `before_code` bytes before the code units of
/// `code` (see [`with_line_instrumentation`]); `None` unless `code` is
/// exactly a code object stored as `with_adaptive_code` expects.
fn field_before_code(code: &Bound<'_, PyAny>, before_code: usize) -> Option<*mut u8> {
    if !code.is_exact_instance_of::<pyo3::types::PyCode>() {
        return None;
    }
    // SAFETY: `code` is a live code object (checked above) and the GIL is
    // held; its code units start at the type's basic size (as in
    // `with_adaptive_code`), and the 3.12/3.13 fields this module reads lie
    // within the 32 bytes before them, so the address stays in the object.
    unsafe {
        let code_type = ffi::Py_TYPE(code.as_ptr());
        if (*code_type).tp_itemsize != 2 {
            return None;
        }
        let basic_size = usize::try_from((*code_type).tp_basicsize).ok()?;
        let offset = basic_size.checked_sub(before_code)?;
        Some(code.as_ptr().cast::<u8>().add(offset))
    }
}

/// `code`'s `_co_monitoring` (null while CPython has none for it).
fn monitoring_data(code: &Bound<'_, PyAny>) -> Option<*mut u8> {
    let field = field_before_code(code, MONITORING_BEFORE_CODE)?;
    // SAFETY: the field is `_co_monitoring`, a pointer within the object.
    Some(unsafe { field.cast::<*mut u8>().read() })
}

/// The addresses in a code object's `sys.monitoring` data (0 for null),
/// to check the layout described at [`with_line_instrumentation`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MonitoringPointers {
    pub monitoring: usize,
    pub tools: usize,
    pub lines: usize,
    pub line_tools: usize,
    pub per_instruction_opcodes: usize,
    pub per_instruction_tools: usize,
}

/// Reads those addresses without following any but `_co_monitoring`;
/// `None` unless `code` is a code object.
pub(crate) fn monitoring_pointers(
    code: &Bound<'_, PyAny>,
    local_events: usize,
) -> Option<MonitoringPointers> {
    let monitoring = monitoring_data(code)?;
    if monitoring.is_null() {
        return Some(MonitoringPointers::default());
    }
    // SAFETY: as in `with_line_instrumentation`: a non-null `_co_monitoring`
    // points to a `_PyCoMonitoringData`, whose five pointers follow the tool
    // sets; only they are read.
    let at = |index: usize| unsafe {
        monitoring
            .add(monitoring_slot(local_events, index))
            .cast::<usize>()
            .read()
    };
    Some(MonitoringPointers {
        monitoring: monitoring as usize,
        tools: at(0),
        lines: at(1),
        line_tools: at(2),
        per_instruction_opcodes: at(3),
        per_instruction_tools: at(4),
    })
}

/// Runs `f` on the `LINE` instrumentation of `code`; `None` if it has none.
/// Python 3.12 and 3.13 only: `_co_monitoring` and `_co_firsttraceable`
/// are the fields just before `co_extra`, which comes last before the code
/// units. `_co_monitoring` points to a `_PyCoMonitoringData`
/// (`Include/cpython/code.h`): the local and the active tool set of each
/// local event (`local_events` of them: 15 on 3.12, 10 on 3.13), then the
/// pointers `tools`, `lines` (two bytes per code unit: the opcode that
/// `INSTRUMENTED_LINE` stands for, 0 where no line starts, and a line delta)
/// and `line_tools` (one byte per code unit; null while one tool uses
/// `LINE` events). `tidy` checks all of this on a probe before it writes
/// anything.
///
/// `f` must not run Python code (see [`with_adaptive_code`]).
pub(crate) fn with_line_instrumentation<R>(
    code: &Bound<'_, PyAny>,
    local_events: usize,
    f: impl FnOnce(LineInstrumentation<'_>) -> R,
) -> Option<R> {
    if local_events <= LINE_EVENT_INDEX {
        return None;
    }
    let pointers = monitoring_pointers(code, local_events)?;
    if pointers.monitoring == 0 || pointers.lines == 0 {
        return None;
    }
    let first_traceable = first_traceable(code)?;
    with_adaptive_code(code, |live| {
        let units = live.len() / 2;
        let monitoring = pointers.monitoring as *const u8;
        // SAFETY: `with_adaptive_code` checked that `code` is a code object;
        // `monitoring_pointers` read `_co_monitoring` from it. The
        // monitoring data is laid out as described above, its arrays
        // allocated with one entry per code unit. The GIL is held and `f`
        // runs no Python code, so nothing else changes them meanwhile.
        unsafe {
            f(LineInstrumentation {
                live,
                lines: std::slice::from_raw_parts_mut(pointers.lines as *mut [u8; 2], units),
                line_tools: (pointers.line_tools != 0)
                    .then(|| std::slice::from_raw_parts_mut(pointers.line_tools as *mut u8, units)),
                local_line_tools: monitoring.add(LINE_EVENT_INDEX).read(),
                active_line_tools: monitoring.add(local_events + LINE_EVENT_INDEX).read(),
                first_traceable,
            })
        }
    })
}

/// A 3.12/3.13 code object's `_co_firsttraceable`: the code unit where
/// tracing starts (see [`with_line_instrumentation`]).
pub(crate) fn first_traceable(code: &Bound<'_, PyAny>) -> Option<usize> {
    let field = field_before_code(code, FIRST_TRACEABLE_BEFORE_CODE)?;
    // SAFETY: on 3.12/3.13 the field is `_co_firsttraceable`, an int
    // (padded to a pointer's size) within the object.
    usize::try_from(unsafe { field.cast::<c_int>().read() }).ok()
}

/// Gives `code`, whose `sys.monitoring` data CPython has allocated but
/// which has no line data yet, the line data `lines` (one entry per code
/// unit, laid out as described at [`with_line_instrumentation`]). CPython
/// uses it from then on and frees it with the code object. Returns whether
/// it was written.
pub(crate) fn install_line_data(
    code: &Bound<'_, PyAny>,
    local_events: usize,
    lines: &[[u8; 2]],
) -> bool {
    let Some(pointers) = monitoring_pointers(code, local_events) else {
        return false;
    };
    if pointers.monitoring == 0 || pointers.lines != 0 {
        return false;
    }
    with_adaptive_code(code, |live| {
        if live.len() != 2 * lines.len() {
            return false;
        }
        // SAFETY: the GIL is held. `_co_monitoring` points to CPython's
        // `_PyCoMonitoringData` (non-null, checked above), whose `lines`
        // pointer, null now, follows the tool sets and `tools`
        // (`monitoring_pointers` reads it at the same place). CPython frees
        // `lines` with `PyMem_Free`, so it is allocated with `PyMem_Malloc`,
        // two bytes per code unit as CPython allocates it. Nothing runs
        // between the check and the write.
        unsafe {
            let bytes = std::mem::size_of_val(lines);
            let data = ffi::PyMem_Malloc(bytes).cast::<u8>();
            if data.is_null() {
                return false;
            }
            std::ptr::copy_nonoverlapping(lines.as_ptr().cast::<u8>(), data, bytes);
            (pointers.monitoring as *mut u8)
                .add(monitoring_slot(local_events, 1))
                .cast::<*mut u8>()
                .write(data);
        }
        true
    })
    .unwrap_or(false)
}

/// The frame of the Python code currently running, if any.
pub(crate) fn current_frame(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: GIL held (we have `py`); the result is a borrowed reference.
    let frame = unsafe { ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return None;
    }
    // SAFETY: non-null borrowed reference to a live frame.
    Some(unsafe { Bound::from_borrowed_ptr(py, frame.cast()) })
}

/// Prints `err` exactly as the interpreter prints an uncaught exception
/// (`sys.excepthook`, setting `sys.last_*`). Never call it with `SystemExit`.
pub(crate) fn print_exception(py: Python<'_>, err: PyErr) {
    err.restore(py);
    // SAFETY: an exception is set (just restored) and the GIL is held.
    unsafe { ffi::PyErr_PrintEx(1) };
}
