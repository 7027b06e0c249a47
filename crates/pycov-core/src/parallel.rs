//! Names of parallel data files: `<data file>.<host>.<pid>.<random>` for a
//! `pycov run -p`, and the same with `.<run token>` appended for a Python
//! subprocess of a run, so the run can find and absorb its children's data.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};

/// The data file of one parallel run, so concurrent runs, on one machine or
/// many, never write the same file.
pub fn parallel_data_path(data_file: &Path) -> PathBuf {
    let mut name = data_file.as_os_str().to_owned();
    name.push(format!(
        ".{}.{}.{:06}",
        hostname(),
        std::process::id(),
        random() % 1_000_000
    ));
    PathBuf::from(name)
}

/// The data file of this process, a measured subprocess of the run that
/// handed out `run_token` ([`new_run_token`]).
pub fn subprocess_data_path(data_file: &Path, run_token: &str) -> PathBuf {
    let mut name = parallel_data_path(data_file).into_os_string();
    name.push(".");
    name.push(run_token);
    PathBuf::from(name)
}

/// Whether `path` was written by a subprocess of the run with `run_token`.
pub fn is_subprocess_data_of(path: &Path, run_token: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(_, token)| token == run_token)
}

/// Where a parallel file of `data_file` goes when it must leave the pending
/// set without being deleted: `<data file>-conflict.<rest of its name>`.
pub fn set_aside_path(parallel_file: &Path, data_file: &Path) -> Option<PathBuf> {
    let base = data_file.file_name()?.to_str()?;
    let name = parallel_file.file_name()?.to_str()?;
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    Some(parallel_file.with_file_name(format!("{base}-conflict.{rest}")))
}

/// A fresh token naming one run (letters and digits only).
pub fn new_run_token() -> String {
    format!("s{:012x}", random() & 0xffff_ffff_ffff)
}

fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// This machine's name; only characters that are safe in a file name are
/// kept.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The parallel data files of `data_file` in `dir`: names that start with
/// the data file's name and a dot, sorted. A missing `dir` has none.
pub fn parallel_files(data_file: &Path, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = data_file.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        if file_name
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix) && n.len() > prefix.len())
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The parallel files beside the data file.
pub fn pending_parallel_files(data_file: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = data_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parallel_files(data_file, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_names_differ_and_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join(".pycov");
        let a = parallel_data_path(&data);
        let b = parallel_data_path(&data);
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).expect("name");
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 5, "{name}");
        assert_eq!(parts[3], std::process::id().to_string());
        let token = new_run_token();
        let child = subprocess_data_path(&data, &token);
        assert!(is_subprocess_data_of(&child, &token));
        assert!(!is_subprocess_data_of(&child, &new_run_token()));
        assert!(!is_subprocess_data_of(&a, &token));
        for path in [
            &a,
            &b,
            &child,
            &data,
            &dir.path().join(".pycovx"),
            &dir.path().join("..pycov.tmp"),
        ] {
            std::fs::write(path, b"").expect("write");
        }
        let aside = set_aside_path(&child, &data).expect("a parallel file");
        assert!(aside
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".pycov-conflict.") && n.ends_with(&token)));
        assert_eq!(set_aside_path(&data, &data), None);
        std::fs::write(&aside, b"").expect("write");
        let mut expected = vec![a, b, child];
        expected.sort();
        assert_eq!(parallel_files(&data, dir.path()).expect("list"), expected);
        assert!(parallel_files(&data, &dir.path().join("missing"))
            .expect("missing dir")
            .is_empty());
    }
}
