//! The two ways of hearing about executed lines, behind one trait.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::ffi;
use crate::fusion::OpcodeTable;
use crate::linedata::LineData;
use crate::opcodes::Opcodes;
use crate::session::{MonitoringHandles, Session};
use crate::tidy::{self, Tidy};

/// A tracing mechanism: installed before the program runs, removed after.
pub(crate) trait Tracer {
    /// Starts delivering events to the active session.
    fn start(&mut self, py: Python<'_>) -> PyResult<()>;
    /// Stops all events. Unless the process is `exiting` right after, it
    /// also leaves the interpreter as it found it.
    fn stop(&mut self, py: Python<'_>, session: &Session, exiting: bool) -> PyResult<()>;
}

/// Chooses the backend for the running interpreter and prepares `session`
/// for it.
pub(crate) fn for_interpreter(
    py: Python<'_>,
    session: &mut Session,
) -> PyResult<Box<dyn Tracer + Send>> {
    if py.version_info() >= (3, 12) {
        Ok(Box::new(Monitoring::claim(py, session)?))
    } else {
        Ok(Box::new(SetTrace))
    }
}

/// Python 3.12+: `sys.monitoring` with native callbacks. `PY_START` decides
/// once per code object and enables `LINE` (or, for code objects with far
/// apart lines, `INSTRUCTION`) events locally for measured code; each
/// callback records one line and returns `DISABLE`.
struct Monitoring {
    tool_id: u8,
    /// Whether to put running code back to plain speed (see `tidy`).
    tidies: bool,
}

/// Tool ids to try, coverage.py's own (1) first; 0 is the debugger's.
const TOOL_IDS: [u8; 6] = [1, 2, 3, 4, 5, 0];

impl Monitoring {
    fn claim(py: Python<'_>, session: &mut Session) -> PyResult<Monitoring> {
        let monitoring = py.import("sys")?.getattr("monitoring")?;
        let mut claimed = None;
        for id in TOOL_IDS {
            if monitoring
                .call_method1("use_tool_id", (id, "pycov"))
                .is_ok()
            {
                claimed = Some(id);
                break;
            }
        }
        let tool_id = claimed.ok_or_else(|| {
            PyRuntimeError::new_err(
                "no free sys.monitoring tool id: all six are taken by other tools",
            )
        })?;
        let events = monitoring.getattr("events")?;
        session.set_monitoring(MonitoringHandles {
            disable: monitoring.getattr("DISABLE")?.unbind(),
            set_local_events: monitoring.getattr("set_local_events")?.unbind(),
            tool_id: tool_id.into_pyobject(py)?.into_any().unbind(),
            line_event: events.getattr("LINE")?.unbind(),
            instruction_event: events.getattr("INSTRUCTION")?.unbind(),
        });
        if let Some(opcodes) = Opcodes::from_interpreter(py).ok().flatten() {
            let fusing = OpcodeTable::for_interpreter(py, &opcodes);
            let set_local_events = monitoring.getattr("set_local_events")?;
            let line_data = LineData::for_interpreter(
                py,
                &opcodes,
                fusing.as_ref(),
                &set_local_events,
                tool_id,
            );
            if let Some(tidy) = Tidy::for_interpreter(py, &opcodes, fusing, tool_id) {
                session.set_tidy(tidy);
            }
            if let Some(data) = line_data {
                session.set_line_data(data);
            }
        }
        Ok(Monitoring {
            tool_id,
            tidies: session.tidies(),
        })
    }
}

impl Tracer for Monitoring {
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        let monitoring = py.import("sys")?.getattr("monitoring")?;
        let events = monitoring.getattr("events")?;
        let py_start = events.getattr("PY_START")?;
        let callbacks = [
            (py_start.clone(), ffi::py_start_function(py)?),
            (events.getattr("LINE")?, ffi::line_function(py)?),
            (
                events.getattr("INSTRUCTION")?,
                ffi::instruction_function(py)?,
            ),
        ];
        for (event, callback) in callbacks {
            monitoring.call_method1("register_callback", (self.tool_id, event, callback))?;
        }
        monitoring.call_method1("set_events", (self.tool_id, py_start))?;
        // Locations DISABLEd by an earlier session on this tool id would never
        // report again.
        monitoring.call_method0("restart_events")?;
        if self.tidies {
            tidy::start_timer();
        }
        Ok(())
    }

    fn stop(&mut self, py: Python<'_>, session: &Session, exiting: bool) -> PyResult<()> {
        if self.tidies {
            tidy::stop_timer(py);
        }
        let monitoring = py.import("sys")?.getattr("monitoring")?;
        let events = monitoring.getattr("events")?;
        monitoring.call_method1("set_events", (self.tool_id, 0))?;
        for event in ["PY_START", "LINE", "INSTRUCTION"] {
            monitoring.call_method1(
                "register_callback",
                (self.tool_id, events.getattr(event)?, py.None()),
            )?;
        }
        let instrumented = session.take_instrumented();
        if exiting {
            // The process ends next. Clearing the local events re-instruments
            // every measured code object (115 ms for 120,000 of them), so
            // they stay, inert without callbacks, and the tool id stays ours:
            // no other tool can inherit them.
            return Ok(());
        }
        // 3.12/3.13 have no clear_tool_id, and free_tool_id keeps local
        // events: clear them before giving the id back.
        let set_local_events = monitoring.getattr("set_local_events")?;
        for code in instrumented {
            set_local_events.call1((self.tool_id, code, 0))?;
        }
        monitoring.call_method1("free_tool_id", (self.tool_id,))?;
        Ok(())
    }
}

/// Python 3.11: a C-level trace function, installed on threads started later
/// through `threading.settrace`. Frames of unmeasured code get
/// `f_trace_lines = False` at their call event, so they cost no line events.
struct SetTrace;

impl Tracer for SetTrace {
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        py.import("threading")?
            .call_method1("settrace", (ffi::thread_start_function(py)?,))?;
        ffi::install_trace_function(py)
    }

    fn stop(&mut self, py: Python<'_>, _session: &Session, _exiting: bool) -> PyResult<()> {
        ffi::remove_trace_function();
        // Other threads remove the trace function themselves at their next
        // event, once no session is active.
        py.import("threading")?
            .call_method1("settrace", (py.None(),))?;
        Ok(())
    }
}
