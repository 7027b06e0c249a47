//! Small helpers shared by the runner's modules.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, carrying on if a panic poisoned it (the data stays valid:
/// every critical section is a single insert or read).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A map keyed by object addresses, looked up inside callbacks: hashed with
/// foldhash, as SipHash (resistance to chosen keys, needless for addresses)
/// costs more than the rest of the lookup.
pub(crate) type AddressMap<V> = std::collections::HashMap<usize, V, foldhash::fast::RandomState>;

/// Whether `PYCOV_DEBUG` (comma-separated) names `topic`.
pub(crate) fn debugging(topic: &str) -> bool {
    std::env::var("PYCOV_DEBUG").is_ok_and(|v| v.split(',').any(|item| item.trim() == topic))
}

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCode, PyTuple};

/// The code objects directly nested in `code` (its `co_consts`).
pub(crate) fn nested_code_objects<'py>(
    code: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let py = code.py();
    let consts = code
        .getattr(intern!(py, "co_consts"))?
        .cast_into::<PyTuple>()?;
    Ok(consts
        .iter()
        .filter(|c| c.is_instance_of::<PyCode>())
        .collect())
}

/// Whether `code` is a deferred-annotations function (3.14+), which
/// coverage.py ignores: it contributes no lines and is never measured.
pub(crate) fn is_annotate(code: &Bound<'_, PyAny>) -> PyResult<bool> {
    static DEFERRED_ANNOTATIONS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let py = code.py();
    if !*DEFERRED_ANNOTATIONS.get_or_init(|| py.version_info() >= (3, 14)) {
        return Ok(false);
    }
    code.getattr(intern!(py, "co_name"))?
        .eq(intern!(py, "__annotate__"))
}

/// A code object's `co_linetable` and `co_firstlineno`, what
/// `pycov_analysis::linetable` reads lines from.
pub(crate) fn line_table<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyBytes>, i64)> {
    Ok((line_table_bytes(py, code)?, first_line(py, code)?))
}

/// A code object's `co_firstlineno`.
pub(crate) fn first_line(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<i64> {
    code.getattr(intern!(py, "co_firstlineno"))?.extract()
}

/// A code object's `co_linetable` alone.
pub(crate) fn line_table_bytes<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(code
        .getattr(intern!(py, "co_linetable"))?
        .cast_into::<PyBytes>()?)
}
