//! Running the user's program the way `python SCRIPT` / `python -m MODULE`
//! would: `sys.argv`, `sys.path[0]`, a fresh `__main__`, exit status,
//! tracebacks without pycov in them, and Python's shutdown order.

use std::ffi::{CString, OsString};
use std::io;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::code::PyCodeInput;
use pyo3::types::{PyCode, PyDict, PyList, PyModule};

use crate::ffi;

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// With this exit status (for `sys.exit`, after printing its message).
    Exit(i32),
    /// By an uncaught `KeyboardInterrupt` (already printed); the process
    /// should end by SIGINT, as Python's does.
    Interrupted,
}

/// A program that is ready to run: its code compiled, its module set up.
pub(crate) enum Prepared<'py> {
    /// A script: its code object and the globals to run it in.
    Script {
        code: Bound<'py, PyAny>,
        globals: Bound<'py, PyDict>,
    },
    /// A module for runpy: a name for `-m`, `__main__` for a directory or
    /// zip archive (whose `sys.argv[0]` stays as given).
    Module { name: String, alter_argv: bool },
}

/// Why the program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The script file cannot be read.
    #[error("can't open file '{}': {}", path.display(), errno_text(source))]
    CannotOpen {
        /// The script (absolute).
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `-m` names nothing importable.
    #[error("{0}")]
    NoModule(String),
}

/// Python's `[Errno 2] No such file or directory` form of an I/O error.
fn errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    match err.raw_os_error() {
        Some(code) => format!("[Errno {code}] {text}"),
        None => text,
    }
}

/// `os.path.abspath(path)` relative to `cwd`.
pub(crate) fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    pycov_core::select::lexical_join(cwd, path)
}

/// Reads and compiles a script before measurement starts. A syntax error is
/// printed as Python prints it and becomes exit status 1.
pub(crate) fn prepare_script<'py>(
    py: Python<'py>,
    script: &Path,
    args: &[OsString],
    cwd: &Path,
) -> Result<Result<Prepared<'py>, Ending>, StartError> {
    let path = absolute(script, cwd);
    if path.is_dir() || is_zip_archive(py, &path) {
        return run_archive(py, script, args, cwd)
            .map(Ok)
            .map_err(|source| StartError::CannotOpen {
                path,
                source: io::Error::other(source.to_string()),
            });
    }
    let source = std::fs::read(&path).map_err(|source| StartError::CannotOpen {
        path: path.clone(),
        source,
    })?;
    // Python sees paths as `str` (a `PathBuf` would become a `pathlib.Path`).
    let path_text = path.to_string_lossy().into_owned();
    let code = match compile_script(py, source, &path_text) {
        Ok(code) => code,
        Err(err) => {
            ffi::print_exception(py, err);
            return Ok(Err(Ending::Exit(1)));
        }
    };
    let setup = || -> PyResult<Bound<'py, PyDict>> {
        let mut argv = vec![script.as_os_str().to_owned()];
        argv.extend(args.iter().cloned());
        set_argv(py, &argv)?;
        // `python script.py` puts the script's real directory first.
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let dir = real.parent().unwrap_or(cwd).to_path_buf();
        set_path0(py, &dir.to_string_lossy())?;
        let main = fresh_main_module(py)?;
        let globals = main.dict();
        globals.set_item("__file__", &path_text)?;
        globals.set_item("__cached__", py.None())?;
        let loader = py
            .import("_frozen_importlib_external")?
            .getattr("SourceFileLoader")?
            .call1(("__main__", &path_text))?;
        globals.set_item("__loader__", loader)?;
        Ok(globals)
    };
    match setup() {
        Ok(globals) => Ok(Ok(Prepared::Script { code, globals })),
        Err(err) => {
            ffi::print_exception(py, err);
            Ok(Err(Ending::Exit(1)))
        }
    }
}

/// Compiles a script's source (bytes: a coding cookie applies) as `python`
/// does: through the C API, which neither inherits pycov's future flags nor
/// sets up the `ast` module's 116 node types, as `compile()` does first (a
/// millisecond). Source with a NUL byte goes through `compile()`, which
/// reports it.
fn compile_script<'py>(
    py: Python<'py>,
    source: Vec<u8>,
    path: &str,
) -> PyResult<Bound<'py, PyAny>> {
    match (CString::new(source), CString::new(path)) {
        (Ok(source), Ok(c_path)) => {
            Ok(PyCode::compile(py, &source, &c_path, PyCodeInput::File)?.into_any())
        }
        (source, _) => {
            let source = source.map_or_else(|nul| nul.into_vec(), CString::into_bytes);
            let kwargs = PyDict::new(py);
            kwargs.set_item("dont_inherit", true)?;
            py.import("builtins")?.getattr("compile")?.call(
                (pyo3::types::PyBytes::new(py, &source), path, "exec"),
                Some(&kwargs),
            )
        }
    }
}

/// Whether `path` is a zip archive Python can run (`zipimport` accepts it,
/// as Python's own path hooks decide).
fn is_zip_archive(py: Python<'_>, path: &Path) -> bool {
    path.is_file()
        && py
            .import("zipimport")
            .and_then(|zipimport| zipimport.call_method1("zipimporter", (path.to_string_lossy(),)))
            .is_ok()
}

/// `python DIR` / `python ARCHIVE.zip`: the directory or archive goes first
/// on `sys.path` (joined to the current directory as text, as Python does)
/// and its `__main__` module runs, `sys.argv[0]` staying as given.
fn run_archive<'py>(
    py: Python<'py>,
    given: &Path,
    args: &[OsString],
    cwd: &Path,
) -> PyResult<Prepared<'py>> {
    let mut argv = vec![given.as_os_str().to_owned()];
    argv.extend(args.iter().cloned());
    set_argv(py, &argv)?;
    let entry = if given.is_absolute() {
        given.to_string_lossy().into_owned()
    } else {
        format!("{}/{}", cwd.to_string_lossy(), given.to_string_lossy())
    };
    set_path0(py, &entry)?;
    fresh_main_module(py)?;
    Ok(Prepared::Module {
        name: "__main__".to_owned(),
        alter_argv: false,
    })
}

/// Sets up `sys.argv` and `sys.path` for `python -m module`.
pub(crate) fn prepare_module<'py>(
    py: Python<'py>,
    module: &str,
    args: &[OsString],
    cwd: &Path,
) -> PyResult<Prepared<'py>> {
    let mut argv = vec![OsString::from("-m")];
    argv.extend(args.iter().cloned());
    set_argv(py, &argv)?;
    set_path0(py, &cwd.to_string_lossy())?;
    fresh_main_module(py)?;
    Ok(Prepared::Module {
        name: module.to_owned(),
        alter_argv: true,
    })
}

fn set_argv(py: Python<'_>, argv: &[OsString]) -> PyResult<()> {
    py.import("sys")?.setattr("argv", PyList::new(py, argv)?)
}

/// Replaces `sys.path[0]` (pycov's own entry) by the program's, unless
/// Python runs with `-P` / `PYTHONSAFEPATH`, which adds none.
fn set_path0(py: Python<'_>, entry: &str) -> PyResult<()> {
    let sys = py.import("sys")?;
    let safe_path: bool = sys
        .getattr("flags")?
        .getattr("safe_path")
        .and_then(|v| v.extract())
        .unwrap_or(false);
    if safe_path {
        return Ok(());
    }
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    if path.is_empty() {
        path.insert(0, entry)
    } else {
        path.set_item(0, entry)
    }
}

/// A `__main__` module as fresh as the interpreter's at startup, installed
/// in `sys.modules`.
fn fresh_main_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let main = PyModule::new(py, "__main__")?;
    let globals = main.dict();
    globals.set_item(
        "__loader__",
        py.import("_frozen_importlib")?.getattr("BuiltinImporter")?,
    )?;
    globals.set_item("__annotations__", PyDict::new(py))?;
    globals.set_item("__builtins__", py.import("builtins")?)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("__main__", &main)?;
    Ok(main)
}

/// Runs the prepared program with measurement on; returns how it ended.
pub(crate) fn execute(py: Python<'_>, prepared: Prepared<'_>) -> Result<Ending, StartError> {
    let result = match prepared {
        Prepared::Script { code, globals } => py
            .import("builtins")
            .and_then(|b| b.getattr("exec"))
            .and_then(|exec| exec.call1((code, &globals)))
            .map(drop),
        Prepared::Module { name, alter_argv } => run_module(py, &name, alter_argv)?,
    };
    Ok(ending(py, result))
}

/// `python -m name`: runpy's own entry point, so tracebacks show the same
/// `<frozen runpy>` frames as Python's. A name that does not resolve is
/// reported as a pycov error instead of runpy's `python: No module named x`.
fn run_module(py: Python<'_>, name: &str, alter_argv: bool) -> Result<PyResult<()>, StartError> {
    let result = py
        .import("runpy")
        .and_then(|runpy| runpy.call_method1("_run_module_as_main", (name, alter_argv)))
        .map(drop);
    if let Err(err) = &result {
        if let Some(message) = runpy_lookup_failure(py, err) {
            return Err(StartError::NoModule(message));
        }
    }
    Ok(result)
}

/// The message of the `SystemExit` that `runpy._run_module_as_main` raises
/// itself when the module cannot be found (`"{sys.executable}: {error}"`):
/// raised in that frame, with nothing of the program below it.
fn runpy_lookup_failure(py: Python<'_>, err: &PyErr) -> Option<String> {
    if !err.is_instance_of::<PySystemExit>(py) {
        return None;
    }
    let traceback = err.traceback(py)?;
    let frame_name: String = traceback
        .getattr("tb_frame")
        .and_then(|f| f.getattr("f_code"))
        .and_then(|c| c.getattr("co_name"))
        .and_then(|n| n.extract())
        .ok()?;
    if frame_name != "_run_module_as_main" || !traceback.getattr("tb_next").ok()?.is_none() {
        return None;
    }
    let message: String = err.value(py).getattr("code").ok()?.extract().ok()?;
    let executable: String = py
        .import("sys")
        .ok()?
        .getattr("executable")
        .ok()?
        .extract()
        .ok()?;
    message
        .strip_prefix(&format!("{executable}: "))
        .map(str::to_owned)
}

/// Turns the program's result into an exit status, printing what Python
/// prints for it.
fn ending(py: Python<'_>, result: PyResult<()>) -> Ending {
    let err = match result {
        Ok(()) => return Ending::Exit(0),
        Err(err) => err,
    };
    if err.is_instance_of::<PySystemExit>(py) {
        return Ending::Exit(system_exit_status(py, &err));
    }
    let interrupted = err.is_instance_of::<PyKeyboardInterrupt>(py);
    ffi::print_exception(py, err);
    if interrupted {
        Ending::Interrupted
    } else {
        Ending::Exit(1)
    }
}

/// Python's `handle_system_exit`: `None` is 0, an int is itself, anything
/// else is printed to `sys.stderr` and gives 1.
fn system_exit_status(py: Python<'_>, err: &PyErr) -> i32 {
    let Ok(code) = err.value(py).getattr(intern!(py, "code")) else {
        return 1;
    };
    if code.is_none() {
        return 0;
    }
    if code.is_instance_of::<pyo3::types::PyInt>() {
        return match code.extract::<i64>() {
            // Python truncates to a C int the same way.
            Ok(value) => value as i32,
            // Beyond a C long, Python's PyLong_AsLong gives -1 (status 255).
            Err(_) => -1,
        };
    }
    let printed = (|| -> PyResult<()> {
        let stderr = py.import("sys")?.getattr("stderr")?;
        if stderr.is_none() {
            return Ok(());
        }
        stderr.call_method1("write", (code.str()?,))?;
        stderr.call_method1("write", ("\n",))?;
        Ok(())
    })();
    drop(printed);
    1
}

/// What Python does after the main program, before finalising: wait for
/// non-daemon threads, then run `atexit` callbacks. Both still measured.
pub(crate) fn shut_down(py: Python<'_>) {
    let joined = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item("threading"))
        .and_then(|threading| threading.call_method0("_shutdown"));
    if let Err(err) = joined {
        if !err.is_instance_of::<pyo3::exceptions::PyKeyError>(py) {
            err.write_unraisable(py, None);
        }
    }
    if let Err(err) = py
        .import("atexit")
        .and_then(|atexit| atexit.call_method0("_run_exitfuncs"))
    {
        err.write_unraisable(py, None);
    }
}

/// Flushes `sys.stdout` and `sys.stderr`, as finalisation would.
pub(crate) fn flush_std_streams(py: Python<'_>) {
    for name in ["stdout", "stderr"] {
        if let Ok(stream) = py.import("sys").and_then(|sys| sys.getattr(name)) {
            if !stream.is_none() {
                let _ = stream.call_method0("flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_lexical() {
        let cwd = Path::new("/work/proj");
        assert_eq!(
            absolute(Path::new("a/../b.py"), cwd),
            PathBuf::from("/work/proj/b.py")
        );
        assert_eq!(
            absolute(Path::new("./x.py"), cwd),
            PathBuf::from("/work/proj/x.py")
        );
        assert_eq!(
            absolute(Path::new("/abs/y.py"), cwd),
            PathBuf::from("/abs/y.py")
        );
    }

    #[test]
    fn errno_text_matches_python() {
        let err = io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&err), "[Errno 2] No such file or directory");
    }
}
