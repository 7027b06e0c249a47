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
mod fusion;
mod linedata;
mod opcodes;
mod program;
mod session;
mod tidy;
mod timing;
mod tracer;
mod util;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;

use pycov_core::paths::relative_to_root;
use pycov_core::{
    datafile, parallel, CoverageData, ExcludeRules, FileSelector, InterpreterPaths, ProcessStart,
    RunOptions, RunTarget, Selection, PROCESS_START_VARIABLE,
};

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
    plan: Plan,
}

/// What a measurement saves, and where.
struct Plan {
    selection: Selection,
    exclude: ExcludeRules,
    /// Where this process writes its data.
    data_file: PathBuf,
    /// With `relative_files`: the run's directory, which stored paths are
    /// relative to.
    relative_to: Option<PathBuf>,
    main_script: Option<PathBuf>,
    role: Role,
}

/// Where the subprocesses of a run write: `<base>.<host>.<pid>.<random>.<token>`.
#[derive(Clone, Debug)]
struct Children {
    base: PathBuf,
    token: String,
}

/// Which process of a measured program this is.
#[derive(Clone, Debug)]
enum Role {
    /// The one `pycov run` started, with its children's names when it
    /// measures subprocesses (it absorbs their data at its end).
    Run(Option<Children>),
    /// A Python subprocess (or fork) of a run measuring subprocesses.
    Subprocess(Children),
}

impl Plan {
    /// Becomes the measurement of a child made by `os.fork()`, with a data
    /// file of its own, if the run measures subprocesses; `false` if not.
    fn adopt_forked_child(&mut self) -> bool {
        let children = match &self.role {
            Role::Run(Some(children)) | Role::Subprocess(children) => children.clone(),
            Role::Run(None) => return false,
        };
        self.data_file = parallel::subprocess_data_path(&children.base, &children.token);
        self.role = Role::Subprocess(children);
        true
    }
}

static ACTIVE_RUN: Mutex<Option<ActiveRun>> = Mutex::new(None);

/// Set in a child made by `os.fork()` that must not save: it inherits the
/// measurement of a run that does not measure subprocesses and must not
/// write over its data file.
static FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[pyfunction]
#[pyo3(name = "_pycov_after_fork_in_child")]
fn after_fork_in_child(py: Python<'_>) {
    // Another thread may have held the lock at the fork: then give up.
    let adopted = ACTIVE_RUN.try_lock().ok().is_some_and(|mut active| {
        active
            .as_mut()
            .is_some_and(|active| active.plan.adopt_forked_child())
    });
    if !adopted {
        FORKED_CHILD.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // No thread of the child is saving, whatever the parent was doing.
    if let Ok(mut saving) = SAVING.0.try_lock() {
        *saving = false;
    }
    // A child dies of SIGTERM at once, as without pycov: a Python-level
    // handler can miss it (a `multiprocessing` worker blocked on a lock the
    // terminating pool holds would wait forever), so its data is saved at
    // `atexit` and `os._exit` only.
    restore_default_sigterm(py);
    tidy::resume_after_fork();
    // A SIGTERM that came while it was blocked takes effect now.
    unblock_sigterm(py);
}

/// Puts SIGTERM's default action back if pycov's handler is installed.
fn restore_default_sigterm(py: Python<'_>) {
    let _ = py.import("_signal").and_then(|signal| {
        let sigterm = signal.getattr("SIGTERM")?;
        if is_pycov_handler(&signal.call_method1("getsignal", (&sigterm,))?) {
            signal.call_method1("signal", (sigterm, signal.getattr("SIG_DFL")?))?;
        }
        Ok(())
    });
}

fn is_pycov_handler(handler: &Bound<'_, PyAny>) -> bool {
    handler
        .getattr("__name__")
        .is_ok_and(|name| name.eq("_pycov_sigterm").unwrap_or(false))
}

thread_local! {
    /// Whether [`before_fork`] blocked SIGTERM in this thread (it was not
    /// blocked already). Per thread, as the signal mask: two threads may
    /// fork at once. A fork copies the forking thread's value.
    static SIGTERM_BLOCKED_FOR_FORK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Blocks SIGTERM in the forking thread until both sides of an `os.fork()`
/// are ready: CPython drops signals that reach a new child before its
/// after-fork reset, which would leave a child with pycov's inherited
/// handler alive after a `Pool.terminate()`.
#[pyfunction]
#[pyo3(name = "_pycov_before_fork")]
fn before_fork(py: Python<'_>) {
    let blocked = || -> PyResult<bool> {
        let signal = py.import("signal")?;
        let sigterm = signal.getattr("SIGTERM")?;
        let mask = pyo3::types::PySet::new(py, [&sigterm])?;
        let previous =
            signal.call_method1("pthread_sigmask", (signal.getattr("SIG_BLOCK")?, mask))?;
        Ok(!previous.contains(&sigterm)?)
    };
    if blocked().unwrap_or(false) {
        SIGTERM_BLOCKED_FOR_FORK.set(true);
    }
    tidy::pause_for_fork(py);
}

#[pyfunction]
#[pyo3(name = "_pycov_after_fork_in_parent")]
fn after_fork_in_parent(py: Python<'_>) {
    tidy::resume_after_fork_in_parent(py);
    unblock_sigterm(py);
}

fn unblock_sigterm(py: Python<'_>) {
    if !SIGTERM_BLOCKED_FOR_FORK.replace(false) {
        return;
    }
    let _ = py.import("signal").and_then(|signal| {
        let mask = pyo3::types::PySet::new(py, [signal.getattr("SIGTERM")?])?;
        signal.call_method1("pthread_sigmask", (signal.getattr("SIG_UNBLOCK")?, mask))
    });
}

fn register_fork_handler(py: Python<'_>) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("before", wrap_pyfunction!(before_fork, py)?)?;
    kwargs.set_item(
        "after_in_parent",
        wrap_pyfunction!(after_fork_in_parent, py)?,
    )?;
    kwargs.set_item("after_in_child", wrap_pyfunction!(after_fork_in_child, py)?)?;
    py.import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kwargs))?;
    Ok(())
}

/// `os._exit` as the program found it.
static ORIGINAL_EXIT: std::sync::OnceLock<Py<PyAny>> = std::sync::OnceLock::new();

/// `os._exit` while measuring: save the data, then leave as asked
/// (`multiprocessing` children and some test runners' workers end this way).
#[pyfunction]
#[pyo3(name = "_exit")]
fn exit_after_saving(py: Python<'_>, status: Bound<'_, PyAny>) -> PyResult<()> {
    match finish(py) {
        Some(saved) => report_save(&saved.warnings, saved.error.as_ref()),
        // Another thread is saving: let it finish before the process ends.
        None => py.detach(wait_for_save),
    }
    match ORIGINAL_EXIT.get() {
        Some(original) => original.bind(py).call1((status,)).map(drop),
        None => Ok(()),
    }
}

fn patch_os_exit(py: Python<'_>) -> PyResult<()> {
    if ORIGINAL_EXIT.get().is_some() {
        return Ok(());
    }
    let os = py.import("os")?;
    let _ = ORIGINAL_EXIT.set(os.getattr("_exit")?.unbind());
    os.setattr("_exit", wrap_pyfunction!(exit_after_saving, py)?)
}

/// The end of a measured subprocess (`atexit`): save its data. A `pycov
/// run` inside the subprocess replaced that measurement and saves its own.
#[pyfunction]
#[pyo3(name = "_pycov_subprocess_exit")]
fn subprocess_exit(py: Python<'_>) {
    let is_subprocess = util::lock(&ACTIVE_RUN)
        .as_ref()
        .is_some_and(|active| matches!(active.plan.role, Role::Subprocess(_)));
    if !is_subprocess {
        return;
    }
    if let Some(saved) = finish(py) {
        report_save(&saved.warnings, saved.error.as_ref());
    }
}

/// Whether a [`finish`] is saving right now, and its end signalled.
static SAVING: (Mutex<bool>, std::sync::Condvar) = (Mutex::new(false), std::sync::Condvar::new());

/// Waits (at most a minute) until no [`finish`] is saving. Never blocks on
/// the lock itself: a fork may have copied it locked.
fn wait_for_save() {
    let (saving, done) = &SAVING;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match saving.try_lock() {
            Ok(guard) if !*guard => return,
            Ok(guard) => {
                let _ = done.wait_timeout(guard, std::time::Duration::from_millis(100));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// Marks a save in progress until dropped.
struct SavingGuard;

impl SavingGuard {
    fn start() -> SavingGuard {
        *util::lock(&SAVING.0) = true;
        SavingGuard
    }
}

impl Drop for SavingGuard {
    fn drop(&mut self) {
        *util::lock(&SAVING.0) = false;
        SAVING.1.notify_all();
    }
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
    let data_file = if options.parallel {
        parallel::parallel_data_path(&options.data_file)
    } else {
        options.data_file.clone()
    };
    datafile::check_writable(&data_file)?;
    // A `pycov run` started by a program measured with `--subprocesses`:
    // this run's own options replace the inherited measurement.
    discard_measurement(py);
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

    if !options.subprocesses {
        // Inherited from an outer run: this run's children follow its own
        // options, which do not measure them.
        let _ = py
            .import("os")
            .and_then(|os| os.getattr("environ"))
            .and_then(|environ| environ.call_method1("pop", (PROCESS_START_VARIABLE, py.None())));
    }
    let children = options.subprocesses.then(|| Children {
        base: options.data_file.clone(),
        token: parallel::new_run_token(),
    });
    if let Some(children) = &children {
        let start = ProcessStart {
            data_file: children.base.clone(),
            run_token: children.token.clone(),
            cwd: canonical_cwd.clone(),
            selection: options.selection.clone(),
            exclude: options.exclude.clone(),
            relative_files: options.relative_files,
        };
        let handed_over = start.encode().map_or_else(
            || {
                Err(format!(
                    "{} or {} is not a UTF-8 path",
                    children.base.display(),
                    canonical_cwd.display()
                ))
            },
            |text| {
                py.import("os")
                    .and_then(|os| os.getattr("environ"))
                    .and_then(|environ| environ.set_item(PROCESS_START_VARIABLE, text))
                    .map_err(|err| err.value(py).to_string())
            },
        );
        if let Err(reason) = handed_over {
            warnings.push(format!("subprocesses are not measured: {reason}"));
        }
    }
    let plan = Plan {
        selection: options.selection.clone(),
        exclude: options.exclude.clone(),
        data_file,
        relative_to: options.relative_files.then(|| canonical_cwd.clone()),
        main_script,
        role: Role::Run(children),
    };
    start_measuring(py, selector, canonical_cwd, plan)?;
    let previous_sigterm = install_sigterm_handler(py);
    if let Err(err) = register_fork_handler(py) {
        warnings.push(format!(
            "forked processes may overwrite the data: {}",
            err.value(py)
        ));
    }
    if let Err(err) = patch_os_exit(py) {
        warnings.push(format!(
            "a program ending by os._exit() will lose its data: {}",
            err.value(py)
        ));
    }

    timing::start("program");
    let executed = program::execute(py, prepared);
    let ending = match executed {
        Ok(ending) => ending,
        Err(start_error) => {
            // Nothing of the program ran: stop without saving.
            discard_measurement(py);
            restore_sigterm_handler(py, previous_sigterm);
            return Err(start_error.into());
        }
    };
    if !options.subprocesses && ran_xdist_workers(py) {
        warnings.push(
            "pytest-xdist ran the tests in worker processes, which were not measured: add --subprocesses (or subprocesses = true in [tool.pycov])"
                .to_owned(),
        );
    }
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

/// Starts measuring this process if a program under `pycov run
/// --subprocesses` started it ([`PROCESS_START_VARIABLE`] is set), as that
/// run measures; the data is saved at exit (`atexit`, `os._exit`) into a
/// file of its own that the run absorbs. Returns whether
/// measuring started. Called at interpreter start-up by pycov's `.pth`
/// file.
pub fn start_subprocess(py: Python<'_>) -> Result<bool, RunError> {
    let Ok(text) = std::env::var(PROCESS_START_VARIABLE) else {
        return Ok(false);
    };
    if util::lock(&ACTIVE_RUN).is_some() {
        return Ok(false);
    }
    let start = ProcessStart::decode(&text).map_err(|e| RunError::Interpreter(e.to_string()))?;
    let paths = interpreter_paths(py).map_err(interpreter_error)?;
    let selector = FileSelector::new(&start.selection, &start.cwd, &paths);
    let children = Children {
        base: start.data_file,
        token: start.run_token,
    };
    let plan = Plan {
        selection: start.selection,
        exclude: start.exclude,
        data_file: parallel::subprocess_data_path(&children.base, &children.token),
        relative_to: start.relative_files.then(|| start.cwd.clone()),
        main_script: None,
        role: Role::Subprocess(children),
    };
    start_measuring(py, selector, start.cwd, plan)?;
    let hooks = || -> PyResult<()> {
        py.import("atexit")?
            .call_method1("register", (wrap_pyfunction!(subprocess_exit, py)?,))?;
        register_fork_handler(py)?;
        patch_os_exit(py)
    };
    if let Err(err) = hooks() {
        discard_measurement(py);
        return Err(interpreter_error(err));
    }
    // No SIGTERM handler here (see `after_fork_in_child`): `multiprocessing`
    // terminates its workers by SIGTERM and must not wait for them.
    Ok(true)
}

/// Installs the tracer for a new session and makes it the active run.
fn start_measuring(
    py: Python<'_>,
    selector: FileSelector,
    cwd: PathBuf,
    plan: Plan,
) -> Result<(), RunError> {
    let mut session = Box::new(Session::new(selector, cwd).ok_or_else(|| {
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
        plan,
    });
    Ok(())
}

/// Stops the active measurement, if any, without saving.
fn discard_measurement(py: Python<'_>) {
    if let Some(active) = take_active_run() {
        let mut tracer = active.tracer;
        let _ = tracer.stop(py, active.session, false);
        ffi::deactivate();
    }
}

/// Whether pytest-xdist distributed tests to workers in this process.
fn ran_xdist_workers(py: Python<'_>) -> bool {
    py.import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.contains("xdist.dsession"))
        .unwrap_or(false)
}

struct Saved {
    files: usize,
    warnings: Vec<String>,
    error: Option<datafile::DataFileError>,
}

/// Stops measuring and writes the data file, once (the SIGTERM handler,
/// `os._exit`, `atexit` in a subprocess and the normal end all call it).
fn finish(py: Python<'_>) -> Option<Saved> {
    let ActiveRun {
        session,
        mut tracer,
        plan,
    } = take_active_run()?;
    let _saving = SavingGuard::start();
    let mut warnings = Vec::new();
    timing::start("detach");
    // Every caller of `finish` ends the process soon after.
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
    let mut data = collect::collect(
        py,
        session,
        &plan.selection,
        &plan.exclude,
        plan.main_script.as_deref(),
        &mut warnings,
    );
    if let Some(root) = &plan.relative_to {
        // Distinct absolute paths stay distinct: nothing to conflict.
        data = data.rename_files(|path| relative_to_root(path, root)).0;
    }
    let absorbed = match &plan.role {
        Role::Run(Some(children)) => absorb_children(&mut data, children, &mut warnings),
        Role::Run(None) => Vec::new(),
        Role::Subprocess(_) if data.is_empty() => {
            // A subprocess that ran none of the measured code.
            return Some(Saved {
                files: 0,
                warnings,
                error: None,
            });
        }
        Role::Subprocess(_) => Vec::new(),
    };
    if data.is_empty() {
        warnings.push("no data was collected".to_owned());
    }
    if matches!(plan.role, Role::Subprocess(_)) {
        // The program may read its children's stderr: only a failure to
        // save is worth printing there.
        warnings.clear();
    }
    timing::start("write");
    // Children's files are removed next: their data must be on disk first.
    let written = if absorbed.is_empty() {
        datafile::write_unsynced(&plan.data_file, &data)
    } else {
        datafile::write(&plan.data_file, &data)
    };
    let error = written.err();
    if error.is_none() {
        for child in absorbed {
            if let Err(err) = std::fs::remove_file(&child) {
                warnings.push(format!("cannot remove {}: {err}", child.display()));
            }
        }
    }
    timing::report(data.len());
    session.report_line_data();
    Some(Saved {
        files: data.len(),
        warnings,
        error,
    })
}

/// Merges the data files the run's subprocesses wrote into `data`; returns
/// those merged whole (to remove once `data` is saved). The others stay for
/// `pycov combine`, named in a warning.
fn absorb_children(
    data: &mut CoverageData,
    children: &Children,
    warnings: &mut Vec<String>,
) -> Vec<PathBuf> {
    let found = match parallel::pending_parallel_files(&children.base) {
        Ok(found) => found,
        Err(err) => {
            warnings.push(format!(
                "cannot list the subprocesses' data files beside {}: {err}",
                children.base.display()
            ));
            return Vec::new();
        }
    };
    let mut absorbed = Vec::new();
    for path in found {
        if !parallel::is_subprocess_data_of(&path, &children.token) {
            continue;
        }
        match datafile::read_into(&path, data) {
            Ok(conflicts) if conflicts.is_empty() => absorbed.push(path),
            Ok(conflicts) => warnings.push(set_aside(&path, &children.base, &conflicts[0].path)),
            Err(err) => warnings.push(format!("{err}; left as it is")),
        }
    }
    absorbed
}

/// Renames a child's data file that measured `source` with other
/// statements than the run (another Python version, or the source changed)
/// out of the pending parallel files, where it would stop every report;
/// returns the warning that says so.
fn set_aside(child: &Path, base: &Path, source: &str) -> String {
    let renamed = parallel::set_aside_path(child, base);
    let problem = format!(
        "{}: {source} was measured with other statements than in this run (another Python version, or its source changed)",
        child.display()
    );
    match renamed {
        Some(renamed) if std::fs::rename(child, &renamed).is_ok() => format!(
            "{problem}; its other files are merged, and it is kept as {} (report it with --data-file)",
            renamed.display()
        ),
        _ => format!("{problem}; left for `pycov combine`"),
    }
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
        if is_pycov_handler(&current) {
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
    if !is_pycov_handler(&signal.call_method1("getsignal", (signum,))?) {
        // The program replaced us and its handler chains to "the previous
        // handler": without pycov that was SIG_DFL, which it could not call.
        return Ok(());
    }
    match finish(py) {
        Some(saved) => report_save(&saved.warnings, saved.error.as_ref()),
        None if FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed) => {}
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
