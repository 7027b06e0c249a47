//! The extension module `pycov._pycov`: `python -m pycov` and the `pycov`
//! console script call [`main`], which runs the command line with a runner
//! that measures inside this interpreter.

use std::ffi::OsString;

use pyo3::prelude::*;

use pycov_cli::{Outcome, ProgramRunner, ProgramStatus, RunFailure, RunReport};
use pycov_core::RunOptions;
use pycov_runner::{Ending, RunError, StartError};

/// Runs programs with `pycov_runner` in the interpreter we are loaded in.
struct InterpreterRunner;

impl ProgramRunner for InterpreterRunner {
    fn analyze(
        &self,
        path: &std::path::Path,
        exclude: &pycov_core::ExcludeRules,
        raw_executed: &pycov_core::LineSet,
    ) -> Result<pycov_core::FileCoverage, String> {
        Python::attach(|py| pycov_runner::analyze_path(py, path, exclude, raw_executed))
    }

    fn run(&self, options: &RunOptions) -> Result<RunReport, RunFailure> {
        Python::attach(|py| match pycov_runner::run(py, options) {
            Ok(outcome) => Ok(RunReport {
                status: match outcome.ending {
                    Ending::Exit(code) => ProgramStatus::Exit(code),
                    Ending::Interrupted => ProgramStatus::Interrupted,
                },
                warnings: outcome.warnings,
                save_error: outcome.save_error.map(|e| e.to_string()),
            }),
            Err(err) => Err(RunFailure {
                exit_code: match &err {
                    // As `python missing.py`.
                    RunError::Start(StartError::CannotOpen { .. }) => 2,
                    _ => 1,
                },
                message: err.to_string(),
            }),
        })
    }
}

/// Runs pycov with `args` (without the program name); returns the exit
/// status. An interrupted program ends the process by SIGINT instead.
#[pyfunction]
fn main(py: Python<'_>, args: Vec<OsString>) -> PyResult<i32> {
    let mut argv: Vec<OsString> = vec!["pycov".into()];
    argv.extend(args);
    match pycov_cli::main(argv, Some(&InterpreterRunner)) {
        Outcome::Exit(code) => Ok(code),
        Outcome::Interrupted => {
            pycov_runner::exit_by_sigint(py)?;
            Ok(130)
        }
    }
}

/// Statements and excluded lines of a file, as `pycov run` computes them
/// (for tests and diagnostics). `exclude` replaces the default regexes.
#[pyfunction]
#[pyo3(signature = (path, exclude=None))]
fn analyze_file(
    py: Python<'_>,
    path: std::path::PathBuf,
    exclude: Option<Vec<String>>,
) -> PyResult<(Vec<u32>, Vec<u32>)> {
    let rules = match exclude {
        Some(patterns) => pycov_core::ExcludeRules::new(&patterns)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?,
        None => pycov_core::ExcludeRules::default(),
    };
    let file = pycov_runner::analyze_path(py, &path, &rules, &pycov_core::LineSet::new())
        .map_err(pyo3::exceptions::PyValueError::new_err)?;
    let numbers = |set: pycov_core::LineSet| set.iter().map(|l| l.get()).collect();
    Ok((numbers(file.statements), numbers(file.excluded)))
}

/// Measures this process if a program under `pycov run --subprocesses`
/// started it; pycov's `.pth` file calls this at interpreter start-up.
/// Problems are printed, never raised: the program runs either way.
#[pyfunction]
fn start_subprocess(py: Python<'_>) {
    if let Err(err) = pycov_runner::start_subprocess(py) {
        eprintln!("pycov: this process is not measured: {err}");
    }
}

/// pycov's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule(name = "_pycov", module = "pycov", gil_used = true)]
mod pycov_module {
    #[pymodule_export]
    use super::{analyze_file, main, start_subprocess, version};
}
