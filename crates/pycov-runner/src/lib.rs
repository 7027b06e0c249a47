//! Measuring a Python program from inside its own interpreter.
//!
//! [`run`] executes `pycov run`: it prepares the program as `python` would,
//! installs the tracer for this Python version (`sys.monitoring` on 3.12+,
//! a C trace function on 3.11), runs the program, lets it shut down, then
//! analyses every measured file once and writes the data file. A SIGTERM
//! saves the data too.
//!
//! ```no_run
//! # use pyo3::Python;
//! # fn demo(py: Python<'_>, options: &pycov_core::RunOptions) {
//! let outcome = pycov_runner::run(py, options).expect("started");
//! for warning in &outcome.warnings {
//!     eprintln!("pycov: {warning}");
//! }
//! # }
//! ```

mod cache;
mod collect;
mod ffi;
mod program;
mod session;
mod timing;
mod tracer;
mod util;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;

use pycov_core::{datafile, FileSelector, InterpreterPaths, RunOptions, RunTarget};

pub use collect::analyze_path;
pub use program::{Ending, StartError};

use session::Session;
use tracer::Tracer;

/// Why `pycov run` could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The data file cannot be written.
    #[error(transparent)]
    DataFile(#[from] datafile::DataFileError),
    /// The interpreter refused something pycov needs.
    #[error("{0}")]
    Interpreter(String),
}

/// What happened in a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// How the program ended.
    pub ending: Ending,
    /// Problems worth telling the user (files that could not be analysed...).
    pub warnings: Vec<String>,
    /// The data file could not be written (the run itself went fine).
    pub save_error: Option<datafile::DataFileError>,
    /// Number of files in the data file.
    pub files: usize,
}

/// A measurement in progress, reachable from the SIGTERM handler.
struct ActiveRun {
    /// Leaked: see `ffi::active_session`.
    session: &'static Session,
    tracer: Box<dyn Tracer + Send>,
    options: RunOptions,
    main_script: Option<PathBuf>,
}

static ACTIVE_RUN: Mutex<Option<ActiveRun>> = Mutex::new(None);

/// Set in a child made by `os.fork()`: it inherits the measurement but must
/// not write over the parent's data file.
static FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[pyfunction]
#[pyo3(name = "_pycov_after_fork_in_child")]
fn after_fork_in_child() {
    FORKED_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn register_fork_handler(py: Python<'_>) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", wrap_pyfunction!(after_fork_in_child, py)?)?;
    py.import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kwargs))?;
    Ok(())
}

fn take_active_run() -> Option<ActiveRun> {
    util::lock(&ACTIVE_RUN).take()
}

fn interpreter_error(err: PyErr) -> RunError {
    Python::attach(|py| RunError::Interpreter(err.value(py).to_string()))
}

/// Runs the program described by `options` under measurement and saves the
/// data. The program's own output and errors go where they would without
/// pycov; pycov's warnings are returned.
pub fn run(py: Python<'_>, options: &RunOptions) -> Result<RunOutcome, RunError> {
    timing::start("setup");
    datafile::check_writable(&options.data_file)?;
    let cwd = std::env::current_dir()
        .map_err(|e| RunError::Interpreter(format!("cannot read the current directory: {e}")))?;
    let canonical_cwd = std::fs::canonicalize(&cwd).unwrap_or_else(|_| cwd.clone());
    let paths = interpreter_paths(py).map_err(interpreter_error)?;
    let selector = FileSelector::new(&options.selection, &canonical_cwd, &paths);
    let mut warnings = Vec::new();
    if options.selection.include_ignored() {
        warnings.push("--include is ignored because --source is set".to_owned());
    }

    let (prepared, main_script) = match &options.target {
        RunTarget::Script(script) => {
            match program::prepare_script(py, script, &options.args, &cwd)? {
                Ok(prepared) => (prepared, Some(program::absolute(script, &cwd))),
                // A syntax error: printed as Python does; nothing ran, nothing saved.
                Err(ending) => {
                    return Ok(RunOutcome {
                        ending,
                        warnings,
                        save_error: None,
                        files: 0,
                    })
                }
            }
        }
        RunTarget::Module(module) => (
            program::prepare_module(py, module, &options.args, &cwd).map_err(interpreter_error)?,
            None,
        ),
    };

    let mut session = Box::new(Session::new(selector, canonical_cwd).ok_or_else(|| {
        RunError::Interpreter("no free co_extra slot in this interpreter".to_owned())
    })?);
    let mut tracer = tracer::for_interpreter(py, &mut session).map_err(interpreter_error)?;
    let session: &'static Session = Box::leak(session);
    ffi::activate(session);
    if let Err(err) = tracer.start(py) {
        let _ = tracer.stop(py, session, false);
        ffi::deactivate();
        return Err(interpreter_error(err));
    }
    *util::lock(&ACTIVE_RUN) = Some(ActiveRun {
        session,
        tracer,
        options: options.clone(),
        main_script,
    });
    let previous_sigterm = install_sigterm_handler(py);
    if let Err(err) = register_fork_handler(py) {
        warnings.push(format!(
            "forked processes may overwrite the data: {}",
            err.value(py)
        ));
    }

    timing::start("program");
    let executed = program::execute(py, prepared);
    let ending = match executed {
        Ok(ending) => ending,
        Err(start_error) => {
            // Nothing of the program ran: stop without saving.
            if let Some(active) = take_active_run() {
                let mut tracer = active.tracer;
                let _ = tracer.stop(py, active.session, false);
                ffi::deactivate();
            }
            restore_sigterm_handler(py, previous_sigterm);
            return Err(start_error.into());
        }
    };
    timing::start("shutdown");
    program::shut_down(py);
    let saved = finish(py);
    restore_sigterm_handler(py, previous_sigterm);
    if TERMINATE_AFTER_SAVE.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(saved) = &saved {
            report_save(&saved.warnings, saved.error.as_ref());
        }
        let sigterm: i32 = py
            .import("_signal")
            .and_then(|s| s.getattr("SIGTERM"))
            .and_then(|v| v.extract())
            .unwrap_or(15);
        let _ = terminate_by(py, sigterm);
    }
    program::flush_std_streams(py);
    let (files, mut save_warnings, save_error) = match saved {
        Some(saved) => (saved.files, saved.warnings, saved.error),
        None => (0, Vec::new(), None),
    };
    warnings.append(&mut save_warnings);
    Ok(RunOutcome {
        ending,
        warnings,
        save_error,
        files,
    })
}

struct Saved {
    files: usize,
    warnings: Vec<String>,
    error: Option<datafile::DataFileError>,
}

/// Stops measuring and writes the data file, once (the SIGTERM handler and
/// the normal end both call it).
fn finish(py: Python<'_>) -> Option<Saved> {
    let active = take_active_run()?;
    let ActiveRun {
        session,
        mut tracer,
        options,
        main_script,
    } = active;
    let mut warnings = Vec::new();
    timing::start("detach");
    // Both callers of `finish` end the process soon after.
    if let Err(err) = tracer.stop(py, session, true) {
        warnings.push(format!(
            "could not detach the tracer cleanly: {}",
            err.value(py)
        ));
    }
    ffi::deactivate();
    if FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    timing::start("analysis");
    let data = collect::collect(
        py,
        session,
        &options.selection,
        &options.exclude,
        main_script.as_deref(),
        &mut warnings,
    );
    if data.is_empty() {
        warnings.push("no data was collected".to_owned());
    }
    timing::start("write");
    let error = datafile::write(&options.data_file, &data).err();
    timing::report(data.len());
    Some(Saved {
        files: data.len(),
        warnings,
        error,
    })
}

/// Installs pycov's SIGTERM handler if SIGTERM has its default action;
/// returns the handler to put back.
fn install_sigterm_handler(py: Python<'_>) -> Option<Py<PyAny>> {
    let install = || -> PyResult<Option<Py<PyAny>>> {
        let signal = py.import("_signal")?;
        let sigterm = signal.getattr("SIGTERM")?;
        let current = signal.call_method1("getsignal", (&sigterm,))?;
        if !current.eq(signal.getattr("SIG_DFL")?)? {
            return Ok(None);
        }
        let handler = wrap_pyfunction!(on_sigterm, py)?;
        signal.call_method1("signal", (&sigterm, handler))?;
        Ok(Some(current.unbind()))
    };
    install().ok().flatten()
}

fn restore_sigterm_handler(py: Python<'_>, previous: Option<Py<PyAny>>) {
    let Some(previous) = previous else { return };
    let _ = py.import("_signal").and_then(|signal| {
        let sigterm = signal.getattr("SIGTERM")?;
        let current = signal.call_method1("getsignal", (&sigterm,))?;
        // Only if the program did not install its own since.
        let ours = current
            .getattr("__name__")
            .is_ok_and(|n| n.eq("_pycov_sigterm").unwrap_or(false));
        if ours {
            signal.call_method1("signal", (sigterm, previous))?;
        }
        Ok(())
    });
}

/// A SIGTERM arrived while the data was being saved; die of it afterwards.
static TERMINATE_AFTER_SAVE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// SIGTERM: save the data, then die of SIGTERM as the program would have
/// without pycov (no flushing of its buffered output, no `atexit`).
#[pyfunction]
#[pyo3(name = "_pycov_sigterm")]
fn on_sigterm(py: Python<'_>, signum: i32, _frame: &Bound<'_, PyAny>) -> PyResult<()> {
    let signal = py.import("_signal")?;
    let installed = signal
        .call_method1("getsignal", (signum,))?
        .getattr("__name__")
        .is_ok_and(|name| name.eq("_pycov_sigterm").unwrap_or(false));
    if !installed {
        // The program replaced us and its handler chains to "the previous
        // handler": without pycov that was SIG_DFL, which it could not call.
        return Ok(());
    }
    match finish(py) {
        Some(saved) => report_save(&saved.warnings, saved.error.as_ref()),
        None => {
            // The normal end is saving right now: let it finish first.
            TERMINATE_AFTER_SAVE.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
    }
    terminate_by(py, signum)
}

/// Resets `signum` to its default action and sends it to this process.
fn terminate_by(py: Python<'_>, signum: i32) -> PyResult<()> {
    let signal = py.import("_signal")?;
    signal.call_method1("signal", (signum, signal.getattr("SIG_DFL")?))?;
    let os = py.import("os")?;
    os.call_method1("kill", (os.call_method0("getpid")?, signum))?;
    Ok(())
}

fn report_save(warnings: &[String], error: Option<&datafile::DataFileError>) {
    for warning in warnings {
        eprintln!("pycov: warning: {warning}");
    }
    if let Some(error) = error {
        eprintln!("pycov: {error}");
    }
}

/// Ends the process by SIGINT, as Python does after an uncaught
/// `KeyboardInterrupt`, so that the parent sees the interruption.
pub fn exit_by_sigint(py: Python<'_>) -> PyResult<()> {
    program::flush_std_streams(py);
    let signal = py.import("_signal")?;
    let sigint = signal.getattr("SIGINT")?;
    signal.call_method1("signal", (&sigint, signal.getattr("SIG_DFL")?))?;
    let os = py.import("os")?;
    os.call_method1("kill", (os.call_method0("getpid")?, sigint))?;
    Ok(())
}

/// Where this interpreter keeps the standard library, installed packages and
/// pycov itself: the directories coverage.py's `_add_stdlib_paths` and
/// `_add_third_party_paths` find through `sysconfig`, read from modules the
/// interpreter has already loaded (importing `sysconfig` and expanding every
/// install scheme took a third of pycov's start-up).
pub fn interpreter_paths(py: Python<'_>) -> PyResult<InterpreterPaths> {
    let sys = py.import("sys")?;
    let os = py.import("os")?;
    let site = py.import("site")?;
    let path_of = |value: Bound<'_, PyAny>| value.extract::<PathBuf>().ok();
    // `stdlib` and `platstdlib`: where `os` lives.
    let stdlib: Vec<PathBuf> = path_of(os.getattr("__file__")?)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    // `purelib`/`platlib` of the prefix and user schemes, `scripts` of both,
    // and posix_home's `lib/python`.
    let mut third_party: Vec<PathBuf> = Vec::new();
    if let Ok(packages) = site.call_method0("getsitepackages") {
        third_party.extend(packages.extract::<Vec<PathBuf>>().unwrap_or_default());
    }
    if let Ok(user_site) = site.call_method0("getusersitepackages") {
        third_party.extend(path_of(user_site));
    }
    for prefix in ["prefix", "exec_prefix"] {
        if let Some(prefix) = sys.getattr(prefix).ok().and_then(path_of) {
            third_party.push(prefix.join("bin"));
            third_party.push(prefix.join("lib").join("python"));
        }
    }
    if let Ok(user_base) = site.call_method0("getuserbase") {
        third_party.extend(path_of(user_base).map(|base| base.join("bin")));
    }
    // Any importable directory inside a venv is third-party too.
    let sys_path: Vec<String> = py.import("sys")?.getattr("path")?.extract()?;
    for entry in sys_path {
        let dir = Path::new(&entry);
        if dir.is_dir() && dir.ancestors().any(|d| d.join("pyvenv.cfg").is_file()) {
            third_party.push(dir.to_path_buf());
        }
    }
    let own: PathBuf = py
        .import("pycov")
        .and_then(|m| m.getattr("__file__"))
        .map_or_else(
            |_| PathBuf::new(),
            |f| {
                f.extract::<PathBuf>()
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_default()
            },
        );
    let canonical = |paths: Vec<PathBuf>| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = paths
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    Ok(InterpreterPaths {
        stdlib: canonical(stdlib),
        third_party: canonical(third_party),
        own: canonical(vec![own]),
    })
}
