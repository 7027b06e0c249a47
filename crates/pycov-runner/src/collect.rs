//! At the end of a run: analyse every measured file once and build the
//! coverage data.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule};

use pycov_analysis::linetable;
use pycov_analysis::source::{decode_source, finish_text, normalize_bytes, Decoded};
use pycov_analysis::{analyze, SourceAnalysis};
use pycov_core::select::find_python_files;
use pycov_core::{
    CoverageData, DataMeta, ExcludeRules, FileCoverage, LineNo, LineSet, Selection, SourceHash,
};

use crate::cache::AnalysisCache;
use crate::session::Session;
use crate::util::{is_annotate, nested_code_objects};

/// A file ready for the interpreter-free part of its analysis, which can
/// happen on another thread.
struct Job {
    path: String,
    hash: SourceHash,
    work: Work,
    /// The lines the tracer saw, or `None` for a never-imported file.
    raw_executed: Option<LineSet>,
}

enum Work {
    /// Source text and code lines, to analyse (and cache).
    Analyze { text: String, code_lines: LineSet },
    /// A cached analysis.
    Cached(SourceAnalysis),
}

type JobResult = (String, Result<FileCoverage, String>, bool);

/// Analyses the measured files (and, for `--source`, the never-imported
/// ones). Problems with single files become warnings; the rest is kept.
///
/// The interpreter-bound part (reading line tables, compiling) runs on this
/// thread while workers tokenise and analyse the files already prepared.
pub(crate) fn collect(
    py: Python<'_>,
    session: &Session,
    selection: &Selection,
    exclude: &ExcludeRules,
    main_script: Option<&Path>,
    warnings: &mut Vec<String>,
) -> CoverageData {
    let mut data = CoverageData::new(DataMeta {
        producer: format!("pycov {}", env!("CARGO_PKG_VERSION")),
        python: python_description(py),
    });
    let trusted = trusted_module_files(py, session, main_script);
    let cache = AnalysisCache::open(py, exclude);
    let cache = cache.as_ref();
    let debug_analysis = crate::util::debugging("analysis");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(2, 4) - 1);
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Mutex::new(receiver);
    let results: Mutex<Vec<JobResult>> = Mutex::new(Vec::new());
    let mut prepare_warnings = Vec::new();
    // Compiling at the end must not print SyntaxWarnings after the program's
    // output (or fail under a program's "error" warnings filter).
    let quiet = QuietWarnings::enter(py);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| drain(&receiver, exclude, cache, &results));
        }
        let mut seen = HashSet::new();
        for (id, file) in session.recorder().files() {
            let path = file.path();
            seen.insert(PathBuf::from(path));
            let codes = session.module_code(py, id);
            // The code object the interpreter ran is the plain compile of the
            // file only when a standard loader made it from the file as it is
            // now; otherwise (pytest's assertion rewriting, exec of a
            // fragment, a file edited during the run) compile the source.
            let unchanged = modified_before(Path::new(path), session.started());
            let module_code = match codes.as_slice() {
                [code] if unchanged && trusted.contains(Path::new(path)) => Some(code.clone()),
                _ => None,
            };
            match prepare(py, Path::new(path), module_code.as_ref(), cache) {
                Ok((hash, work)) => {
                    if debug_analysis {
                        let trusted = trusted.contains(Path::new(path));
                        eprintln!(
                            "pycov: analysis: {path}: {}",
                            describe(&work, module_code.is_some(), codes.len(), trusted)
                        );
                    }
                    let job = Job {
                        path: path.to_owned(),
                        hash,
                        work,
                        raw_executed: Some(file.executed()),
                    };
                    submit(job, &sender, exclude, cache, &results);
                }
                Err(problem) => {
                    prepare_warnings.push(format!("{path}: {problem}; its coverage is not saved"))
                }
            }
        }
        for path in unexecuted_source_files(py, session, selection) {
            if seen.contains(&path) {
                continue;
            }
            let Some(key) = path.to_str() else { continue };
            match prepare(py, &path, None, cache) {
                Ok((hash, work)) => {
                    if debug_analysis {
                        eprintln!(
                            "pycov: analysis: {key}: {}",
                            describe(&work, false, 0, false)
                        );
                    }
                    let job = Job {
                        path: key.to_owned(),
                        hash,
                        work,
                        raw_executed: None,
                    };
                    submit(job, &sender, exclude, cache, &results);
                }
                Err(problem) => prepare_warnings.push(format!("{key}: {problem}; it is left out")),
            }
        }
        drop(sender);
        // This thread helps with what is left.
        drain(&receiver, exclude, cache, &results);
    });
    quiet.exit();
    warnings.append(&mut prepare_warnings);
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, result, executed) in results {
        match result {
            Ok(file) => data.insert(path, file),
            Err(problem) if executed => {
                warnings.push(format!("{path}: {problem}; its coverage is not saved"))
            }
            Err(problem) => warnings.push(format!("{path}: {problem}; it is left out")),
        }
    }
    let matched = session.matched_packages();
    for package in &selection.source_packages {
        if !matched.contains(package) {
            warnings.extend(unmeasured_package_warning(py, package));
        }
    }
    for error in session.callback_errors() {
        warnings.push(format!("internal error while tracing: {error}"));
    }
    data
}

/// How a file's analysis was obtained, for `PYCOV_DEBUG=analysis`.
fn describe(
    work: &Work,
    from_module_code: bool,
    module_codes: usize,
    standard_loader: bool,
) -> String {
    match (work, from_module_code) {
        (Work::Cached(_), _) => "from the cache".to_owned(),
        (Work::Analyze { .. }, true) => "lines from the module's code object".to_owned(),
        (Work::Analyze { .. }, false) => {
            let loader = if standard_loader {
                "standard loader"
            } else {
                "not the standard loader"
            };
            format!("compiled ({module_codes} module code objects seen, {loader})")
        }
    }
}

/// Analyses jobs until the queue is closed and empty.
fn drain(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    exclude: &ExcludeRules,
    cache: Option<&AnalysisCache>,
    results: &Mutex<Vec<JobResult>>,
) {
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        finish_into(job, exclude, cache, results);
    }
}

/// Hands `job` to the workers, or finishes it here when its analysis is
/// cached: that takes microseconds, less than waking a worker.
fn submit(
    job: Job,
    workers: &mpsc::Sender<Job>,
    exclude: &ExcludeRules,
    cache: Option<&AnalysisCache>,
    results: &Mutex<Vec<JobResult>>,
) {
    if matches!(job.work, Work::Analyze { .. }) {
        // The workers outlive the loop, so sending cannot fail.
        let _ = workers.send(job);
        return;
    }
    finish_into(job, exclude, cache, results);
}

/// Works out the coverage of one file, from its analysis (made now, or
/// cached), into `results`.
fn finish_into(
    job: Job,
    exclude: &ExcludeRules,
    cache: Option<&AnalysisCache>,
    results: &Mutex<Vec<JobResult>>,
) {
    let executed = job.raw_executed.is_some();
    let analysis = match job.work {
        Work::Cached(analysis) => Ok(analysis),
        Work::Analyze { text, code_lines } => analyze(&text, &code_lines, exclude)
            .inspect(|analysis| {
                if let Some(cache) = cache {
                    cache.put(&job.hash, analysis);
                }
            })
            .map_err(|e| format!("couldn't parse it as Python ({e})")),
    };
    let result = analysis.map(|analysis| FileCoverage {
        source_hash: job.hash,
        executed: job
            .raw_executed
            .as_ref()
            .map_or_else(LineSet::new, |raw| analysis.executed(raw)),
        statements: analysis.statements,
        excluded: analysis.excluded,
        line_count: analysis.line_count,
        regions: analysis.regions,
    });
    if let Ok(mut results) = results.lock() {
        results.push((job.path, result, executed));
    }
}

fn python_description(py: Python<'_>) -> String {
    let version = py.version_info();
    let implementation = py
        .import("sys")
        .and_then(|sys| sys.getattr("implementation"))
        .and_then(|imp| imp.getattr("name"))
        .and_then(|name| name.extract::<String>())
        .unwrap_or_else(|_| "python".to_owned());
    let name = if implementation == "cpython" {
        "CPython".to_owned()
    } else {
        implementation
    };
    format!(
        "{name} {}.{}.{}",
        version.major, version.minor, version.patch
    )
}

/// Files of modules loaded by the standard source loader, whose code
/// objects are a plain compile of the file, plus the main script (compiled
/// by pycov from the file).
fn trusted_module_files(
    py: Python<'_>,
    session: &Session,
    main_script: Option<&Path>,
) -> HashSet<PathBuf> {
    let mut trusted = HashSet::new();
    if let Some(script) = main_script.and_then(|s| session.real_path(s)) {
        trusted.insert(script);
    }
    let result: PyResult<()> = (|| {
        let source_loader = py
            .import("_frozen_importlib_external")?
            .getattr("SourceFileLoader")?;
        let modules = py
            .import("sys")?
            .getattr("modules")?
            .call_method0("values")?;
        let modules = py.import("builtins")?.getattr("list")?.call1((modules,))?;
        for module in modules.try_iter()? {
            let Some(spec) = module_global(&module?, "__spec__") else {
                continue;
            };
            let (Ok(loader), Ok(origin)) = (
                spec.getattr(intern!(py, "loader")),
                spec.getattr(intern!(py, "origin")),
            ) else {
                continue;
            };
            if !loader.get_type().is(&source_loader) {
                continue;
            }
            if let Ok(origin) = origin.extract::<PathBuf>() {
                if let Some(real) = session.real_path(&origin) {
                    trusted.insert(real);
                }
            }
        }
        Ok(())
    })();
    drop(result);
    trusted
}

/// Reads one file and, unless its analysis is cached, decodes it and finds
/// its code lines (from the module's code object, or by compiling it). The
/// error is a short description.
fn prepare(
    py: Python<'_>,
    path: &Path,
    module_code: Option<&Bound<'_, PyAny>>,
    cache: Option<&AnalysisCache>,
) -> Result<(SourceHash, Work), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the source ({e})"))?;
    let hash = SourceHash::of(&bytes);
    if let Some(analysis) = cache.and_then(|cache| cache.get(&hash)) {
        return Ok((hash, Work::Cached(analysis)));
    }
    let normalized = normalize_bytes(&bytes);
    let text = match decode_source(&normalized) {
        Decoded::Text(text) => text,
        Decoded::Foreign(encoding) => decode_with_python(py, &normalized, &encoding)
            .map_err(|e| format!("cannot decode the source as {encoding} ({e})"))?,
    };
    let code_lines = match module_code {
        Some(code) => code_lines(py, code),
        None => compile(py, &text, path).and_then(|code| code_lines(py, &code)),
    }
    .map_err(|e| format!("couldn't parse it as Python ({})", e.value(py)))?;
    Ok((hash, Work::Analyze { text, code_lines }))
}

/// Analyses one file as a run does (compiling it for its code lines):
/// statements, exclusions, regions and source hash, with `raw_executed`
/// (the lines a tracer saw, continuation lines of multi-line statements
/// included) turned into executed statements; or why it could not be
/// analysed.
pub fn analyze_path(
    py: Python<'_>,
    path: &Path,
    exclude: &ExcludeRules,
    raw_executed: &LineSet,
) -> Result<FileCoverage, String> {
    let quiet = QuietWarnings::enter(py);
    let prepared = prepare(py, path, None, None);
    quiet.exit();
    let (hash, work) = prepared?;
    let analysis = match work {
        Work::Analyze { text, code_lines } => analyze(&text, &code_lines, exclude)
            .map_err(|e| format!("couldn't parse it as Python ({e})"))?,
        Work::Cached(analysis) => analysis,
    };
    Ok(FileCoverage {
        source_hash: hash,
        executed: analysis.executed(raw_executed),
        statements: analysis.statements,
        excluded: analysis.excluded,
        line_count: analysis.line_count,
        regions: analysis.regions,
    })
}

fn decode_with_python(py: Python<'_>, bytes: &[u8], encoding: &str) -> PyResult<String> {
    let text: String = PyBytes::new(py, bytes)
        .call_method1("decode", (encoding, "replace"))?
        .extract()?;
    Ok(finish_text(text))
}

fn compile<'py>(py: Python<'py>, text: &str, path: &Path) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("dont_inherit", true)?;
    py.import("builtins")?
        .getattr("compile")?
        .call((text, path.to_string_lossy(), "exec"), Some(&kwargs))
}

/// The lines of every code object reachable from `root` (coverage.py's
/// `ByteParser.find_statements`; `__annotate__` objects contribute no lines).
fn code_lines(py: Python<'_>, root: &Bound<'_, PyAny>) -> PyResult<LineSet> {
    let mut lines = LineSet::new();
    let mut stack = vec![root.clone()];
    while let Some(code) = stack.pop() {
        stack.extend(nested_code_objects(&code)?);
        if is_annotate(&code)? {
            continue;
        }
        let (table, first_line) = crate::util::line_table(py, &code)?;
        linetable::for_each_line(table.as_bytes(), first_line, |line| {
            if let Some(line) = LineNo::from_i64(line) {
                lines.insert(line);
            }
        });
    }
    Ok(lines)
}

/// Never-imported files under `--source`: directories, and the directories
/// of imported source packages (coverage.py's `find_possibly_unexecuted_files`).
fn unexecuted_source_files(
    py: Python<'_>,
    session: &Session,
    selection: &Selection,
) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = selection.source_dirs.clone();
    for package in &selection.source_packages {
        if let Some(dir) = package_directory(py, package) {
            roots.push(dir);
        }
    }
    let mut files = Vec::new();
    for root in roots {
        for file in find_python_files(&root, false) {
            let Some(canonical) = session.real_path(&file) else {
                continue;
            };
            let omitted = canonical
                .to_str()
                .is_none_or(|c| session.selector().is_omitted(c));
            if !omitted {
                files.push(canonical);
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// The directory of an imported package (`None` for plain modules).
fn package_directory(py: Python<'_>, package: &str) -> Option<PathBuf> {
    let module = py
        .import("sys")
        .ok()?
        .getattr("modules")
        .ok()?
        .get_item(package)
        .ok()?;
    let file: PathBuf = module_global(&module, "__file__")?.extract().ok()?;
    let is_package = file.file_stem().is_some_and(|stem| stem == "__init__");
    if !is_package {
        return None;
    }
    std::fs::canonicalize(file.parent()?).ok()
}

/// A module's global, read from its `__dict__`: attribute access on a lazily
/// loaded module (`importlib.util.LazyLoader`) would execute it. `None` for
/// non-modules, missing names and `None` values.
fn module_global<'py>(module: &Bound<'py, PyAny>, name: &str) -> Option<Bound<'py, PyAny>> {
    let module = module.cast::<PyModule>().ok()?;
    module
        .dict()
        .get_item(name)
        .ok()
        .flatten()
        .filter(|value| !value.is_none())
}

/// coverage.py's warnings for a `--source` package nothing was measured in.
fn unmeasured_package_warning(py: Python<'_>, package: &str) -> Option<String> {
    let module = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item(package))
        .ok();
    let Some(module) = module else {
        return Some(format!("module {package} was never imported"));
    };
    let is_package = module_global(&module, "__path__").is_some();
    let file = module_global(&module, "__file__").and_then(|f| f.extract::<PathBuf>().ok());
    match file {
        // A namespace package has no code of its own to measure.
        None if is_package => None,
        Some(file) if file.exists() => Some(format!(
            "module {package} was previously imported, but not measured"
        )),
        _ => Some(format!("module {package} has no Python source")),
    }
}

/// Whether `path` was last modified before `start` (so code compiled when it
/// was imported during the run matches it).
fn modified_before(path: &Path, start: std::time::SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified < start)
}

/// `warnings.catch_warnings()` with everything ignored, for compiling
/// sources after the program has finished.
struct QuietWarnings<'py> {
    guard: Option<Bound<'py, PyAny>>,
}

impl<'py> QuietWarnings<'py> {
    fn enter(py: Python<'py>) -> QuietWarnings<'py> {
        let guard = (|| -> PyResult<Bound<'py, PyAny>> {
            let warnings = py.import("warnings")?;
            let guard = warnings.getattr("catch_warnings")?.call0()?;
            guard.call_method0("__enter__")?;
            warnings.call_method1("simplefilter", ("ignore",))?;
            Ok(guard)
        })();
        QuietWarnings { guard: guard.ok() }
    }

    fn exit(self) {
        if let Some(guard) = self.guard {
            let py = guard.py();
            let _ = guard.call_method1("__exit__", (py.None(), py.None(), py.None()));
        }
    }
}
