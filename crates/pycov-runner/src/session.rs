//! The state of one measurement: which files are measured, the executed
//! lines, and the decision cached per code object.

use std::collections::{HashMap, HashSet};
use std::ffi::c_long;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCode, PyDict, PyString};

use pycov_core::{Decision, FileId, FileSelector, LineNo, Recorder};

use crate::ffi;
use crate::linedata::{Baseline, LineData};
use crate::tidy::{CodeKind, Tidy};

/// The low half of a cached decision for code that is not measured.
const NOT_MEASURED: u32 = u32::MAX;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("pycov packs a generation and a file id into co_extra and needs 64-bit pointers");

static NEXT_GENERATION: AtomicU32 = AtomicU32::new(1);

use crate::util::{is_annotate, lock, nested_code_objects, AddressMap};

/// A decision cached under a filename object's address, with the object
/// kept alive so the address cannot be reused.
type KeptDecision = (Py<PyString>, Option<FileId>);

/// A code object measured through `INSTRUCTION` events: its file and the
/// line of each of its code units.
type UnitLines = (FileId, Box<[u32]>);

/// What the `sys.monitoring` backend needs inside the callbacks.
#[derive(Debug)]
pub(crate) struct MonitoringHandles {
    /// `sys.monitoring.DISABLE`.
    pub disable: Py<PyAny>,
    /// `sys.monitoring.set_local_events`.
    pub set_local_events: Py<PyAny>,
    /// Our tool id, as a Python int.
    pub tool_id: Py<PyAny>,
    /// `sys.monitoring.events.LINE`.
    pub line_event: Py<PyAny>,
    /// `sys.monitoring.events.INSTRUCTION`.
    pub instruction_event: Py<PyAny>,
}

/// One measurement.
#[derive(Debug)]
pub(crate) struct Session {
    recorder: Recorder,
    selector: FileSelector,
    cwd: PathBuf,
    started: std::time::SystemTime,
    generation: u32,
    extra_index: isize,
    monitoring: Option<MonitoringHandles>,
    /// Decisions by filename object (kept alive, so the address is stable).
    by_object: Mutex<AddressMap<KeptDecision>>,
    /// Decisions by filename text.
    by_name: Mutex<HashMap<String, Option<FileId>>>,
    /// Real paths of the directories files were found in.
    real_dirs: Mutex<HashMap<PathBuf, Option<PathBuf>>>,
    /// `<module>` code objects seen per measured file.
    module_code: Mutex<HashMap<FileId, Vec<Py<PyAny>>>>,
    /// Code objects with local events (to clear them when stopping).
    instrumented: Mutex<Vec<Py<PyAny>>>,
    /// For code objects measured through `INSTRUCTION` events: their file and
    /// the line of each code unit, by code object address (kept alive in
    /// `instrumented`).
    instruction_lines: Mutex<AddressMap<UnitLines>>,
    /// `--source` packages some measured module belonged to.
    matched_packages: Mutex<HashSet<String>>,
    /// Errors raised inside callbacks (never passed on to the program).
    callback_errors: Mutex<Vec<String>>,
    /// Python 3.12/3.13: putting running code back to plain speed.
    tidy: Option<Tidy>,
    /// Line data written ahead of CPython (see `linedata`).
    line_data: Option<LineData>,
}

impl Session {
    /// A new session; `None` if the interpreter has no free `co_extra` slot.
    pub(crate) fn new(selector: FileSelector, cwd: PathBuf) -> Option<Session> {
        Some(Session {
            recorder: Recorder::new(),
            selector,
            cwd,
            started: std::time::SystemTime::now(),
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            extra_index: ffi::code_extra_index()?,
            monitoring: None,
            by_object: Mutex::new(AddressMap::default()),
            by_name: Mutex::new(HashMap::new()),
            real_dirs: Mutex::new(HashMap::new()),
            module_code: Mutex::new(HashMap::new()),
            instrumented: Mutex::new(Vec::new()),
            instruction_lines: Mutex::new(AddressMap::default()),
            matched_packages: Mutex::new(HashSet::new()),
            callback_errors: Mutex::new(Vec::new()),
            tidy: None,
            line_data: None,
        })
    }

    pub(crate) fn set_tidy(&mut self, tidy: Tidy) {
        self.tidy = Some(tidy);
    }

    pub(crate) fn set_line_data(&mut self, data: LineData) {
        self.line_data = Some(data);
    }

    /// `PYCOV_DEBUG=linedata`: what writing line data ahead did.
    pub(crate) fn report_line_data(&self) {
        if let Some(data) = &self.line_data {
            data.report();
        }
    }

    pub(crate) fn tidies(&self) -> bool {
        self.tidy.is_some()
    }

    /// One tidying pass over the code on the threads' stacks (see `tidy`).
    /// Code measured through `INSTRUCTION` events is left alone: every
    /// instruction of it may still be instrumented.
    pub(crate) fn tidy_running_code(&self, py: Python<'_>) {
        let Some(tidy) = &self.tidy else {
            return;
        };
        tidy.tidy_running_code(py, |code| {
            if lock(&self.instruction_lines).contains_key(&(code.as_ptr() as usize)) {
                return CodeKind::Leave;
            }
            let extra = ffi::extra_of(code, self.extra_index);
            if !self.is_measured(extra) {
                return CodeKind::Unmeasured;
            }
            self.recorder
                .get(FileId::from_u32(extra as u32))
                .map_or(CodeKind::Leave, CodeKind::Measured)
        })
    }

    pub(crate) fn set_monitoring(&mut self, handles: MonitoringHandles) {
        self.monitoring = Some(handles);
    }

    /// When measurement started.
    pub(crate) fn started(&self) -> std::time::SystemTime {
        self.started
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub(crate) fn selector(&self) -> &FileSelector {
        &self.selector
    }

    pub(crate) fn extra_index(&self) -> isize {
        self.extra_index
    }

    /// `sys.monitoring.DISABLE` as a borrowed pointer, when monitoring.
    pub(crate) fn disable_object(&self) -> Option<*mut pyo3::ffi::PyObject> {
        self.monitoring.as_ref().map(|m| m.disable.as_ptr())
    }

    fn pack(&self, file: Option<FileId>) -> usize {
        let low = file.map_or(NOT_MEASURED, FileId::as_u32);
        ((self.generation as usize) << 32) | low as usize
    }

    /// Whether a cached value was written by this session.
    #[inline]
    pub(crate) fn is_decided(&self, extra: usize) -> bool {
        (extra >> 32) as u32 == self.generation
    }

    /// Whether a cached value (of this session) says "measured".
    #[inline]
    pub(crate) fn is_measured(&self, extra: usize) -> bool {
        self.is_decided(extra) && extra as u32 != NOT_MEASURED
    }

    /// Records `line` for the code whose cached value is `extra`.
    #[inline]
    pub(crate) fn record(&self, extra: usize, line: c_long) {
        if !self.is_measured(extra) {
            return;
        }
        let Some(line) = u32::try_from(line).ok().and_then(LineNo::new) else {
            return;
        };
        if let Some(file) = self.recorder.get(FileId::from_u32(extra as u32)) {
            file.record(line);
        }
    }

    /// A code object starts running for the first time in this session:
    /// decide whether its file is measured, cache that on the code object
    /// and, when monitoring, enable its `LINE` events. Returns whether it is
    /// measured. Errors are kept for the end of the run, never raised.
    pub(crate) fn on_code_start(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        frame: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let file = match self.decide(py, code, frame) {
            Ok(file) => file,
            Err(err) => {
                self.note_callback_error(py, err);
                None
            }
        };
        ffi::set_extra(code, self.extra_index, self.pack(file));
        let Some(file) = file else {
            return false;
        };
        if let Some(monitoring) = &self.monitoring {
            self.enable_lines(py, monitoring, code, file, None);
        }
        let is_module = code
            .getattr(intern!(py, "co_name"))
            .is_ok_and(|name| name.eq(intern!(py, "<module>")).unwrap_or(false));
        if is_module {
            lock(&self.module_code)
                .entry(file)
                .or_default()
                .push(code.clone().unbind());
            if let Some(monitoring) = &self.monitoring {
                if let Err(err) = self.enable_nested(py, monitoring, code, file) {
                    self.note_callback_error(py, err);
                }
            }
        }
        true
    }

    /// Turns on line measurement for `code` alone: `LINE` events, or
    /// `INSTRUCTION` events when CPython cannot store its lines compactly (see
    /// [`LINE_DELTA_SHIFT`]): then every `LINE` event would scan the whole line
    /// table (tens of thousands of instructions per event in a big module's
    /// top-level code), while an `INSTRUCTION` callback gets a bytecode offset
    /// that pycov maps to its line with the table it reads once here.
    /// With a `baseline`, `code` is one pycov has decided on but that has not
    /// run yet: pycov instruments it itself when it can (see
    /// [`LineData::install_ahead`]).
    fn enable_lines(
        &self,
        py: Python<'_>,
        monitoring: &MonitoringHandles,
        code: &Bound<'_, PyAny>,
        file: FileId,
        baseline: Option<&Baseline>,
    ) {
        // Read once, for both uses below; without it `LINE` events still go on.
        let table = crate::util::line_table_bytes(py, code)
            .map_err(|err| self.note_callback_error(py, err))
            .ok();
        let unit_lines = table.as_ref().and_then(|table| {
            long_span_lines(py, code, table).unwrap_or_else(|err| {
                self.note_callback_error(py, err);
                None
            })
        });
        let event = match unit_lines {
            None => monitoring.line_event.bind(py),
            Some(_) => monitoring.instruction_event.bind(py),
        };
        if let (None, Some(table), Some(data)) = (&unit_lines, &table, &self.line_data) {
            if let Some(baseline) = baseline {
                match data.install_ahead(py, code, table, baseline) {
                    Ok(true) => {
                        lock(&self.instrumented).push(code.clone().unbind());
                        return;
                    }
                    Ok(false) => {}
                    Err(err) => self.note_callback_error(py, err),
                }
            }
            if let Err(err) = data.install(py, code, table) {
                self.note_callback_error(py, err);
            }
        }
        match monitoring
            .set_local_events
            .call1(py, (monitoring.tool_id.bind(py), code, event))
        {
            Ok(_) => {
                // Kept alive in `instrumented`, so the address stays this
                // code object's.
                lock(&self.instrumented).push(code.clone().unbind());
                if let Some(lines) = unit_lines {
                    lock(&self.instruction_lines).insert(code.as_ptr() as usize, (file, lines));
                }
            }
            Err(err) => self.note_callback_error(py, err),
        }
    }

    /// Records the line of the instruction at byte `offset` of `code`, for
    /// code measured through `INSTRUCTION` events.
    pub(crate) fn record_instruction(&self, code: usize, offset: isize) {
        let found = lock(&self.instruction_lines)
            .get(&code)
            .and_then(|(file, lines)| {
                let line = *lines.get(usize::try_from(offset).ok()? / 2)?;
                Some((*file, line))
            });
        if let Some((file, line)) = found {
            if let (Some(file), Some(line)) = (self.recorder.get(file), LineNo::new(line)) {
                file.record(line);
            }
        }
    }

    /// When a measured module starts, turns on `LINE` events for every code
    /// object nested in it. CPython instruments each code object when its
    /// events change: done now, before the functions first run, that happens
    /// once per function instead of twice (for the global `PY_START`, then
    /// for `LINE`), which halves the first-call cost of big code bases.
    fn enable_nested(
        &self,
        py: Python<'_>,
        monitoring: &MonitoringHandles,
        module: &Bound<'_, PyAny>,
        file: FileId,
    ) -> PyResult<()> {
        // The module's own events were just turned on: CPython brought it up
        // to date.
        let baseline = self
            .line_data
            .as_ref()
            .and_then(|data| data.baseline(module));
        let mut stack = vec![module.clone()];
        while let Some(code) = stack.pop() {
            for nested in nested_code_objects(&code)? {
                if self.is_decided(ffi::extra_of(&nested, self.extra_index)) {
                    continue;
                }
                if is_annotate(&nested)? {
                    ffi::set_extra(&nested, self.extra_index, self.pack(None));
                    continue;
                }
                ffi::set_extra(&nested, self.extra_index, self.pack(Some(file)));
                self.enable_lines(py, monitoring, &nested, file, baseline.as_ref());
                stack.push(nested);
            }
        }
        Ok(())
    }

    fn note_callback_error(&self, py: Python<'_>, err: PyErr) {
        let mut errors = lock(&self.callback_errors);
        if errors.len() < 10 {
            errors.push(err.value(py).to_string());
        }
    }

    /// Errors swallowed by callbacks.
    pub(crate) fn callback_errors(&self) -> Vec<String> {
        lock(&self.callback_errors).clone()
    }

    fn decide(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        frame: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<FileId>> {
        if !code.is_instance_of::<PyCode>() {
            return Ok(None);
        }
        if is_annotate(code)? {
            return Ok(None);
        }
        let filename = code
            .getattr(intern!(py, "co_filename"))?
            .cast_into::<PyString>()?;
        let key = filename.as_ptr() as usize;
        if let Some((_, file)) = lock(&self.by_object).get(&key) {
            return Ok(*file);
        }
        let file = match filename.to_str() {
            Ok(name) => self.decide_filename(py, name, frame),
            // Undecodable (surrogate) names cannot be written to a data file.
            Err(_) => None,
        };
        lock(&self.by_object).insert(key, (filename.unbind(), file));
        Ok(file)
    }

    fn decide_filename(
        &self,
        py: Python<'_>,
        filename: &str,
        frame: Option<&Bound<'_, PyAny>>,
    ) -> Option<FileId> {
        if let Some(file) = lock(&self.by_name).get(filename) {
            return *file;
        }
        let file = self.decide_new_filename(py, filename, frame);
        lock(&self.by_name).insert(filename.to_owned(), file);
        file
    }

    /// `realpath` of a file and its metadata. A file that is not a symlink
    /// itself lies in its directory's real path, which is resolved once per
    /// directory: one `lstat` per file instead of a `readlink` per path
    /// component (thousands of calls for a pytest run's imports).
    fn real_file(&self, path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
        let metadata = std::fs::symlink_metadata(path).ok()?;
        let (Some(dir), Some(name), false) = (
            path.parent(),
            path.file_name(),
            metadata.file_type().is_symlink(),
        ) else {
            let real = std::fs::canonicalize(path).ok()?;
            let metadata = std::fs::metadata(&real).ok()?;
            return Some((real, metadata));
        };
        Some((self.real_dir(dir)?.join(name), metadata))
    }

    /// `realpath` of a file (relative to the current directory), resolved
    /// as measured files are.
    pub(crate) fn real_path(&self, path: &Path) -> Option<PathBuf> {
        let absolute = std::path::absolute(path).ok()?;
        self.real_file(&absolute).map(|(real, _)| real)
    }

    /// `realpath` of a directory, from its parent's when it is not a
    /// symlink itself; remembered.
    fn real_dir(&self, dir: &Path) -> Option<PathBuf> {
        if let Some(known) = lock(&self.real_dirs).get(dir) {
            return known.clone();
        }
        let real = match (
            dir.parent(),
            dir.file_name(),
            std::fs::symlink_metadata(dir),
        ) {
            (Some(parent), Some(name), Ok(metadata))
                if metadata.is_dir() && !metadata.file_type().is_symlink() =>
            {
                self.real_dir(parent).map(|parent| parent.join(name))
            }
            _ => std::fs::canonicalize(dir).ok(),
        };
        lock(&self.real_dirs).insert(dir.to_path_buf(), real.clone());
        real
    }

    fn decide_new_filename(
        &self,
        py: Python<'_>,
        filename: &str,
        frame: Option<&Bound<'_, PyAny>>,
    ) -> Option<FileId> {
        // "<string>", "<frozen runpy>", "<doctest ...>": no file to report on.
        if filename.is_empty() || filename.starts_with('<') || filename.starts_with("memory:") {
            return None;
        }
        let path = Path::new(filename);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            // Relative to where the program is now, as coverage.py resolves it.
            std::env::current_dir()
                .unwrap_or_else(|_| self.cwd.clone())
                .join(path)
        };
        let (canonical, metadata) = self.real_file(&joined)?;
        if !metadata.is_file() {
            return None;
        }
        let canonical = canonical.to_str()?;
        let module = if self.selector.has_source_packages() {
            let frame = frame.cloned().or_else(|| ffi::current_frame(py));
            module_name(py, frame.as_ref(), canonical)
        } else {
            None
        };
        match self.selector.decide(canonical, module.as_deref()) {
            Decision::Measure => {
                if let Some(package) = module
                    .as_deref()
                    .and_then(|m| self.selector.matching_package(m))
                {
                    lock(&self.matched_packages).insert(package.to_owned());
                }
                let max_line = u32::try_from(metadata.len().saturating_add(1)).unwrap_or(u32::MAX);
                Some(self.recorder.register(canonical, max_line))
            }
            Decision::Skip(_) => None,
        }
    }

    /// `--source` packages that some measured module belonged to.
    pub(crate) fn matched_packages(&self) -> HashSet<String> {
        lock(&self.matched_packages).clone()
    }

    /// The `<module>` code objects seen for `file`.
    pub(crate) fn module_code<'py>(&self, py: Python<'py>, file: FileId) -> Vec<Bound<'py, PyAny>> {
        lock(&self.module_code)
            .get(&file)
            .map(|codes| codes.iter().map(|c| c.bind(py).clone()).collect())
            .unwrap_or_default()
    }

    /// Takes the code objects that got local `LINE` events.
    pub(crate) fn take_instrumented(&self) -> Vec<Py<PyAny>> {
        std::mem::take(&mut *lock(&self.instrumented))
    }
}

/// How CPython 3.12/3.13 store an instruction's line for `LINE` events: as
/// an 8-bit delta from `first_line + (code_unit >> 4)`; outside -125..=127
/// (3.13's narrower range) the line is recomputed by scanning the whole
/// line table at every event. Measured on 3.12.1 and 3.13.0.
const LINE_DELTA_SHIFT: usize = 4;
const LINE_DELTA_RANGE: std::ops::RangeInclusive<i64> = -125..=127;

/// Line tables shorter than this are not checked: should some line not fit,
/// the scan CPython makes for it at each of its events covers at most this
/// many bytes (microseconds), and checking would cost more than it saves. Most code
/// objects are this small (a generated 30-line function: 250 bytes).
const SHORT_LINE_TABLE: usize = 1024;

/// The line of each code unit of `code` if CPython cannot store some of its
/// lines compactly (see [`LINE_DELTA_SHIFT`]) and looking them up would be
/// slow; `None` otherwise. Units without a line (or before line 1) map to 0.
/// `table` is its `co_linetable`.
fn long_span_lines(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    table: &Bound<'_, PyBytes>,
) -> PyResult<Option<Box<[u32]>>> {
    if table.as_bytes().len() < SHORT_LINE_TABLE {
        return Ok(None);
    }
    let first = crate::util::first_line(py, code)?;
    let mut unit = 0usize;
    let mut fits = true;
    pycov_analysis::linetable::for_each_range(table.as_bytes(), first, |units, line| {
        if let Some(line) = line {
            // Within a range the predicted line only grows, so its ends suffice.
            for u in [unit, unit + units - 1] {
                fits &= LINE_DELTA_RANGE.contains(&(line - first - (u >> LINE_DELTA_SHIFT) as i64));
            }
        }
        unit += units;
    });
    if fits {
        return Ok(None);
    }
    let mut lines = Vec::with_capacity(unit);
    pycov_analysis::linetable::for_each_range(table.as_bytes(), first, |units, line| {
        let line = line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0);
        lines.resize(lines.len() + units, line);
    });
    Ok(Some(lines.into_boxed_slice()))
}

/// coverage.py's `name_for_module`: the module name of the code running in
/// `frame` (`__name__`, else `__spec__.name`, else the file's stem).
fn module_name(py: Python<'_>, frame: Option<&Bound<'_, PyAny>>, path: &str) -> Option<String> {
    let globals = frame
        .and_then(|f| f.getattr(intern!(py, "f_globals")).ok())
        .and_then(|g| g.cast_into::<PyDict>().ok());
    if let Some(globals) = &globals {
        if let Ok(Some(name)) = globals.get_item(intern!(py, "__name__")) {
            if let Ok(name) = name.extract::<String>() {
                if name != "__main__" {
                    return Some(name);
                }
            }
        }
        if let Ok(Some(spec)) = globals.get_item(intern!(py, "__spec__")) {
            if let Ok(name) = spec
                .getattr(intern!(py, "name"))
                .and_then(|n| n.extract::<String>())
            {
                if name != "__main__" {
                    return Some(name);
                }
            }
        }
    }
    Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
}
