//! A cache of source analyses, keyed by what determines them: the source
//! bytes, the interpreter (its compiler decides the statements), the
//! exclusion rules and pycov's version. What `.pyc` files are to imports,
//! this is to the end of a run: a repeated run skips tokenising and, for
//! files not loaded by the standard loader (pytest's rewritten tests),
//! compiling.
//!
//! Entries live in `$PYCOV_CACHE_DIR` (empty: no cache), else
//! `$XDG_CACHE_HOME/pycov`, else `~/.cache/pycov`. Every problem (no
//! directory, a damaged entry) just means a miss. Entries untouched for 30
//! days are pruned, one shard at a time.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use pyo3::prelude::*;

use pycov_analysis::SourceAnalysis;
use pycov_core::{datafile, ExcludeRules, SourceHash};

const MAGIC: &[u8; 8] = b"PYCOVAC2";
const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
const TOUCH_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Where analyses are kept between runs.
#[derive(Debug)]
pub(crate) struct AnalysisCache {
    dir: PathBuf,
    salt: [u8; 16],
    pruned: AtomicBool,
}

impl AnalysisCache {
    /// The cache for this interpreter and these rules; `None` if disabled or
    /// there is nowhere to put it.
    pub(crate) fn open(py: Python<'_>, exclude: &ExcludeRules) -> Option<AnalysisCache> {
        let base = match std::env::var_os("PYCOV_CACHE_DIR") {
            Some(dir) if dir.is_empty() => return None,
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
                Some(dir) => PathBuf::from(dir).join("pycov"),
                None => PathBuf::from(std::env::var_os("HOME")?)
                    .join(".cache")
                    .join("pycov"),
            },
        };
        let interpreter: String = py
            .import("sys")
            .and_then(|sys| {
                let version: String = sys.getattr("version")?.extract()?;
                let tag: String = sys
                    .getattr("implementation")?
                    .getattr("cache_tag")?
                    .extract()?;
                let optimize: i64 = sys.getattr("flags")?.getattr("optimize")?.extract()?;
                Ok(format!("{version}\0{tag}\0{optimize}"))
            })
            .ok()?;
        let mut identity = format!("{}\0{interpreter}", env!("CARGO_PKG_VERSION"));
        for pattern in exclude.patterns() {
            identity.push('\0');
            identity.push_str(pattern);
        }
        let dir = base.join("analysis-2");
        fs::create_dir_all(&dir).ok()?;
        Some(AnalysisCache {
            dir,
            salt: xxhash_rust::xxh3::xxh3_128(identity.as_bytes()).to_le_bytes(),
            pruned: AtomicBool::new(false),
        })
    }

    fn entry(&self, source: &SourceHash) -> (PathBuf, [u8; 16]) {
        let mut input = [0u8; 32];
        input[..16].copy_from_slice(&self.salt);
        input[16..].copy_from_slice(&source.0);
        let key = xxhash_rust::xxh3::xxh3_128(&input).to_le_bytes();
        let hex = pycov_core::to_hex(&key);
        (self.dir.join(&hex[..2]).join(&hex[2..]), key)
    }

    /// The cached analysis of a source with this hash.
    pub(crate) fn get(&self, source: &SourceHash) -> Option<SourceAnalysis> {
        let (path, key) = self.entry(source);
        let bytes = fs::read(&path).ok()?;
        let body = bytes.strip_prefix(MAGIC)?.strip_prefix(&key[..])?;
        let (payload, checksum) = body.split_at(body.len().checked_sub(8)?);
        if xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes() != checksum {
            return None;
        }
        let analysis = SourceAnalysis::decode(payload)?;
        if let Ok(modified) = fs::metadata(&path).and_then(|m| m.modified()) {
            if modified.elapsed().is_ok_and(|age| age > TOUCH_AFTER) {
                if let Ok(file) = fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
            }
        }
        Some(analysis)
    }

    /// Stores an analysis (best effort).
    pub(crate) fn put(&self, source: &SourceHash, analysis: &SourceAnalysis) {
        let (path, key) = self.entry(source);
        let Some(shard) = path.parent() else { return };
        if fs::create_dir_all(shard).is_err() {
            return;
        }
        let payload = analysis.encode();
        let mut bytes = Vec::with_capacity(payload.len() + 32);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        if datafile::write_atomically_unsynced(&path, &bytes).is_ok()
            && !self.pruned.swap(true, Ordering::Relaxed)
        {
            prune(shard);
        }
    }
}

/// Removes entries of one shard not used for [`MAX_AGE`].
fn prune(shard: &std::path::Path) {
    let Ok(entries) = fs::read_dir(shard) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > MAX_AGE));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}
