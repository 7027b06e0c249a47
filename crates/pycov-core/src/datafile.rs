//! The native data file (`.pycov`): versioned, self-contained, written
//! atomically.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic      8 bytes  "PYCOV\0DF"
//! version    u32      FORMAT_VERSION
//! producer   str      u32 length + UTF-8
//! python     str
//! files      u32      count, then per file, sorted by path:
//!   path       str
//!   hash       16 bytes
//!   statements bitset  u32 word count + u64 words (bit n = line n)
//!   excluded   bitset
//!   executed   bitset
//!   (version 2 on:)
//!   line count u32
//!   regions    u32 count, then per region: u8 kind (0 function, 1 class),
//!              str name, u32 start line, u32 range count, u32 pairs
//! checksum   u64      xxh3-64 of every byte before it
//! ```
//!
//! Reading checks the magic, the version, every length against what is left
//! of the input (so a hostile length never allocates), and the checksum.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

use crate::lineset::EncodedLineSet;
use crate::{
    CodeRegion, CoverageData, DataMeta, FileCoverage, LineNo, LineRanges, MergeConflict,
    RegionKind, SourceHash,
};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"PYCOV\0DF";
/// The format version this build writes and the newest it reads. Version 1
/// files (no line counts or regions) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// The default data file name.
pub const DEFAULT_DATA_FILE: &str = ".pycov";

/// Why a data file could not be read or written.
#[derive(Debug, Error)]
pub enum DataFileError {
    /// The file could not be opened or read.
    #[error("cannot read data file {}: {source}", path.display())]
    Read {
        /// The data file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file could not be written.
    #[error("cannot write data file {}: {source}", path.display())]
    Write {
        /// The data file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not start with pycov's magic bytes.
    #[error("{} is not a pycov data file", path.display())]
    NotDataFile {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a newer pycov.
    #[error(
        "{} uses data format {found}, newer than this pycov reads (up to {supported}); upgrade pycov",
        path.display()
    )]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file is truncated or damaged.
    #[error("{} is damaged: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Serialises `data` into `out`.
pub fn encode(data: &CoverageData, out: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 + data.len() * 128);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    put_str(&mut buf, &data.meta.producer)?;
    put_str(&mut buf, &data.meta.python)?;
    put_u32(&mut buf, data.len())?;
    for (path, file) in data.files() {
        put_str(&mut buf, path)?;
        buf.extend_from_slice(&file.source_hash.0);
        for set in [&file.statements, &file.excluded, &file.executed] {
            set.encode_into(&mut buf);
        }
        buf.extend_from_slice(&file.line_count.to_le_bytes());
        put_u32(&mut buf, file.regions.len())?;
        for region in &file.regions {
            buf.push(match region.kind {
                RegionKind::Function => 0,
                RegionKind::Class => 1,
            });
            put_str(&mut buf, &region.name)?;
            buf.extend_from_slice(&region.start.get().to_le_bytes());
            put_u32(&mut buf, region.lines.ranges().len())?;
            for (first, last) in region.lines.ranges() {
                buf.extend_from_slice(&first.get().to_le_bytes());
                buf.extend_from_slice(&last.get().to_le_bytes());
            }
        }
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&buf);
    buf.extend_from_slice(&checksum.to_le_bytes());
    out.write_all(&buf)
}

fn put_u32(buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("too large for the data format"))?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_str(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    put_u32(buf, s.len())?;
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Why bytes are not a valid data file; [`decode`] adds the path.
#[derive(Debug)]
enum DecodeError {
    NotDataFile,
    FutureVersion(u32),
    Corrupt(String),
}

/// Parses a data file's bytes. `path` only names the file in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<CoverageData, DataFileError> {
    decode_inner(bytes).map_err(|e| name_error(e, path))
}

fn name_error(error: DecodeError, path: &Path) -> DataFileError {
    match error {
        DecodeError::NotDataFile => DataFileError::NotDataFile {
            path: path.to_owned(),
        },
        DecodeError::FutureVersion(found) => DataFileError::FutureVersion {
            path: path.to_owned(),
            found,
            supported: FORMAT_VERSION,
        },
        DecodeError::Corrupt(detail) => DataFileError::Corrupt {
            path: path.to_owned(),
            detail,
        },
    }
}

/// A data file read in place and checked, nothing decoded yet.
struct Parsed<'a> {
    producer: &'a str,
    python: &'a str,
    entries: Vec<RawEntry<'a>>,
}

/// One file's entry, read in place. Everything is checked but the UTF-8 of
/// the path, which is checked when it is decoded: merging never needs the
/// names of files it already has.
struct RawEntry<'a> {
    path: &'a [u8],
    hash: [u8; 16],
    statements: EncodedLineSet<'a>,
    excluded: EncodedLineSet<'a>,
    executed: EncodedLineSet<'a>,
    line_count: u32,
    /// The encoded regions (count first); empty before version 2.
    regions: &'a [u8],
}

impl RawEntry<'_> {
    /// The path, for messages.
    fn shown_path(&self) -> String {
        String::from_utf8_lossy(self.path).into_owned()
    }

    fn path(&self) -> Result<String, DecodeError> {
        String::from_utf8(self.path.to_vec()).map_err(|_| {
            DecodeError::Corrupt(format!(
                "a path is not valid UTF-8: {:?}",
                self.shown_path()
            ))
        })
    }

    fn regions(&self) -> Result<Vec<CodeRegion>, DecodeError> {
        if self.regions.is_empty() {
            return Ok(Vec::new());
        }
        Reader {
            bytes: self.regions,
            pos: 0,
        }
        .regions(&self.shown_path())
    }

    fn to_file(&self) -> Result<FileCoverage, DecodeError> {
        Ok(FileCoverage {
            source_hash: SourceHash(self.hash),
            statements: self.statements.to_set(),
            excluded: self.excluded.to_set(),
            executed: self.executed.to_set(),
            line_count: self.line_count,
            regions: self.regions()?,
        })
    }
}

/// Checks the file's magic, version, checksum and the structure of every
/// entry, without decoding line sets and regions.
fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DecodeError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::NotDataFile);
    }
    let mut reader = Reader {
        bytes,
        pos: MAGIC.len(),
    };
    let version = reader.u32()?;
    if version > FORMAT_VERSION {
        return Err(DecodeError::FutureVersion(version));
    }
    if version == 0 {
        return Err(DecodeError::Corrupt("format version 0".into()));
    }
    if bytes.len() < reader.pos + 8 {
        return Err(truncated());
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 8);
    let mut checksum_bytes = [0u8; 8];
    checksum_bytes.copy_from_slice(checksum);
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(checksum_bytes) {
        return Err(DecodeError::Corrupt(
            "checksum mismatch (truncated or modified)".into(),
        ));
    }
    reader.bytes = body;
    let producer = reader.str()?;
    let python = reader.str()?;
    let count = reader.u32()? as usize;
    // Each entry takes at least 32 bytes: never allocate more than the
    // input could describe.
    let mut entries: Vec<RawEntry<'_>> = Vec::with_capacity(count.min(body.len() / 32));
    for _ in 0..count {
        let path = reader.bytes_field()?;
        if entries.last().is_some_and(|previous| previous.path >= path) {
            return Err(DecodeError::Corrupt(format!(
                "file entries out of order at {:?}",
                String::from_utf8_lossy(path)
            )));
        }
        let mut hash = [0u8; 16];
        hash.copy_from_slice(reader.take(16)?);
        let statements = reader.encoded_set(path)?;
        let excluded = reader.encoded_set(path)?;
        let executed = reader.encoded_set(path)?;
        let (line_count, regions) = if version >= 2 {
            let line_count = reader.u32()?;
            let start = reader.pos;
            reader.check_regions(path)?;
            (line_count, &reader.bytes[start..reader.pos])
        } else {
            (0, &[][..])
        };
        entries.push(RawEntry {
            path,
            hash,
            statements,
            excluded,
            executed,
            line_count,
            regions,
        });
    }
    if reader.pos != reader.bytes.len() {
        return Err(DecodeError::Corrupt(format!(
            "{} unexpected bytes after the last file",
            reader.bytes.len() - reader.pos
        )));
    }
    Ok(Parsed {
        producer,
        python,
        entries,
    })
}

fn decode_inner(bytes: &[u8]) -> Result<CoverageData, DecodeError> {
    let parsed = parse(bytes)?;
    let mut data = CoverageData::new(DataMeta {
        producer: parsed.producer.to_owned(),
        python: parsed.python.to_owned(),
    });
    for entry in &parsed.entries {
        data.insert(entry.path()?, entry.to_file()?);
    }
    Ok(data)
}

/// Unions a data file's bytes into `into` as [`CoverageData::merge`] does,
/// without decoding the files `into` already has: their line sets are
/// compared and OR-ed in place. The input is checked, and what is merged
/// decoded, before `into` changes, so a bad input changes nothing. `path`
/// only names the file in errors.
pub fn merge_encoded(
    bytes: &[u8],
    path: &Path,
    into: &mut CoverageData,
) -> Result<Vec<MergeConflict>, DataFileError> {
    merge_inner(bytes, into, false)
        .map(Option::unwrap_or_default)
        .map_err(|e| name_error(e, path))
}

/// [`merge_encoded`] for callers that need absolute paths: `None`, and
/// nothing merged, when the file stores relative ones (`relative_files`);
/// decode it and resolve them instead.
pub fn merge_encoded_absolute(
    bytes: &[u8],
    path: &Path,
    into: &mut CoverageData,
) -> Result<Option<Vec<MergeConflict>>, DataFileError> {
    merge_inner(bytes, into, true).map_err(|e| name_error(e, path))
}

fn merge_inner(
    bytes: &[u8],
    into: &mut CoverageData,
    refuse_relative: bool,
) -> Result<Option<Vec<MergeConflict>>, DecodeError> {
    let parsed = parse(bytes)?;
    let relative = |path: &[u8]| {
        // Most paths are POSIX-absolute: one byte decides.
        !path.starts_with(b"/")
            && std::str::from_utf8(path).is_ok_and(crate::paths::is_relative_path)
    };
    if refuse_relative && parsed.entries.iter().any(|entry| relative(entry.path)) {
        return Ok(None);
    }
    let adopt_meta = into.is_empty() && into.meta == DataMeta::default();
    let mut conflicts = Vec::new();
    let mut new_files = Vec::new();
    {
        // Both sides are sorted by path: one walk pairs them up. The
        // updates hold disjoint borrows of `into`'s files until all is
        // known to be good.
        let mut updates = Vec::new();
        let mut existing = into.files_mut().peekable();
        for entry in &parsed.entries {
            while existing
                .peek()
                .is_some_and(|(known, _)| known.as_bytes() < entry.path)
            {
                existing.next();
            }
            let same = existing
                .peek()
                .is_some_and(|(known, _)| known.as_bytes() == entry.path);
            if !same {
                new_files.push((entry.path()?, entry.to_file()?));
                continue;
            }
            let Some((known, mine)) = existing.next() else {
                continue;
            };
            if !mine.statements.equals_encoded(entry.statements) {
                conflicts.push(MergeConflict {
                    path: known.clone(),
                });
                continue;
            }
            let regions = if mine.regions.is_empty() && !entry.regions.is_empty() {
                Some(entry.regions()?)
            } else {
                None
            };
            updates.push((mine, entry, regions));
        }
        for (mine, entry, regions) in updates {
            mine.executed.union_encoded(entry.executed);
            mine.excluded.union_encoded(entry.excluded);
            mine.line_count = mine.line_count.max(entry.line_count);
            if let Some(regions) = regions {
                mine.regions = regions;
            }
        }
    }
    if adopt_meta {
        into.meta = DataMeta {
            producer: parsed.producer.to_owned(),
            python: parsed.python.to_owned(),
        };
    }
    for (path, file) in new_files {
        into.insert(path, file);
    }
    Ok(Some(conflicts))
}

fn truncated() -> DecodeError {
    DecodeError::Corrupt("truncated".into())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(raw))
    }

    /// A length-prefixed field, unchecked.
    fn bytes_field(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes_field()?)
            .map_err(|_| DecodeError::Corrupt("a string is not valid UTF-8".into()))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// Walks the regions as [`Reader::regions`] reads them, checking them
    /// without building anything.
    /// Walks the regions as [`Reader::regions`] reads them, checking them
    /// without building anything.
    fn check_regions(&mut self, path: &[u8]) -> Result<(), DecodeError> {
        let corrupt = |what: String| {
            DecodeError::Corrupt(format!("{}: {what}", String::from_utf8_lossy(path)))
        };
        let count = self.u32()?;
        for _ in 0..count {
            let kind = self.take(1)?[0];
            if kind > 1 {
                return Err(corrupt(format!("unknown region kind {kind}")));
            }
            let name = self.bytes_field()?;
            // Names are nearly always ASCII, which needs no decoding.
            if !name.is_ascii() && std::str::from_utf8(name).is_err() {
                return Err(corrupt("a region name is not valid UTF-8".into()));
            }
            let start = self.u32()?;
            if LineNo::new(start).is_none() {
                return Err(corrupt(format!("invalid line number {start}")));
            }
            let ranges = self.u32()?;
            let mut previous_end = 0;
            for _ in 0..ranges {
                let (first, last) = (self.u32()?, self.u32()?);
                if LineNo::new(first).is_none() || LineNo::new(last).is_none() {
                    return Err(corrupt(format!("invalid line number in {first}-{last}")));
                }
                if first > last || previous_end >= first {
                    return Err(corrupt("a region has unordered lines".into()));
                }
                previous_end = last;
            }
        }
        Ok(())
    }

    fn encoded_set(&mut self, path: &[u8]) -> Result<EncodedLineSet<'a>, DecodeError> {
        EncodedLineSet::read(self.bytes, &mut self.pos).map_err(|e| match e {
            crate::LineSetDecodeError::Truncated => truncated(),
            other => DecodeError::Corrupt(format!("{}: {other}", String::from_utf8_lossy(path))),
        })
    }

    fn line(&mut self, path: &str) -> Result<LineNo, DecodeError> {
        let raw = self.u32()?;
        LineNo::new(raw)
            .ok_or_else(|| DecodeError::Corrupt(format!("{path}: invalid line number {raw}")))
    }

    fn regions(&mut self, path: &str) -> Result<Vec<CodeRegion>, DecodeError> {
        let count = self.u32()? as usize;
        // Each region takes at least 13 bytes: never allocate more than the
        // input could describe.
        let mut regions = Vec::with_capacity(count.min(self.bytes.len() / 13));
        for _ in 0..count {
            let kind = match self.take(1)?[0] {
                0 => RegionKind::Function,
                1 => RegionKind::Class,
                other => {
                    return Err(DecodeError::Corrupt(format!(
                        "{path}: unknown region kind {other}"
                    )))
                }
            };
            let name = self.string()?;
            let start = self.line(path)?;
            let ranges = self.u32()? as usize;
            let mut pairs = Vec::with_capacity(ranges.min(self.bytes.len() / 8));
            for _ in 0..ranges {
                pairs.push((self.line(path)?, self.line(path)?));
            }
            let lines = LineRanges::from_pairs(pairs).ok_or_else(|| {
                DecodeError::Corrupt(format!("{path}: region {name:?} has unordered lines"))
            })?;
            regions.push(CodeRegion {
                kind,
                name,
                start,
                lines,
            });
        }
        Ok(regions)
    }
}

/// Reads and parses a data file.
pub fn read(path: &Path) -> Result<CoverageData, DataFileError> {
    let bytes = fs::read(path).map_err(|source| DataFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode(&bytes, path)
}

/// Reads a data file and unions it into `into` ([`merge_encoded`]).
pub fn read_into(
    path: &Path,
    into: &mut CoverageData,
) -> Result<Vec<MergeConflict>, DataFileError> {
    let bytes = fs::read(path).map_err(|source| DataFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    merge_encoded(&bytes, path, into)
}

/// Writes `data` to `path` atomically: into a temporary file beside it,
/// flushed to disk, then renamed over it, so readers never see a
/// half-written file. For data whose sources go away next (`combine`).
pub fn write(path: &Path, data: &CoverageData) -> Result<(), DataFileError> {
    write_data(path, data, true)
}

/// Like [`write`] without waiting for the disk: for the data a run
/// measured, which is written at every process exit (coverage.py also
/// writes it with SQLite's `synchronous=off`). Readers still never see a
/// half-written file; only an operating system crash can lose it.
pub fn write_unsynced(path: &Path, data: &CoverageData) -> Result<(), DataFileError> {
    write_data(path, data, false)
}

fn write_data(path: &Path, data: &CoverageData, sync: bool) -> Result<(), DataFileError> {
    let fail = |source| DataFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    encode(data, &mut bytes).map_err(fail)?;
    replace_file(path, &bytes, sync).map_err(fail)
}

/// Writes `bytes` to `path` through a temporary file, flushed to disk, and
/// a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes, true)
}

/// Like [`write_atomically`] without waiting for the disk: for files that
/// carry their own checksum and can be recomputed (caches).
pub fn write_atomically_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes, false)
}

fn replace_file(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let temp = temporary_sibling(path)?;
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        drop(file);
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Checks, before a run, that a file can be created at `path`: its directory
/// exists and is writable. Creates and removes a temporary file.
pub fn check_writable(path: &Path) -> Result<(), DataFileError> {
    let fail = |source: io::Error| DataFileError::Write {
        path: path.to_owned(),
        source,
    };
    let temp = temporary_sibling(path).map_err(fail)?;
    fs::File::create(&temp).map_err(fail)?;
    fs::remove_file(&temp).map_err(fail)?;
    if path.is_dir() {
        return Err(fail(io::Error::other("it is a directory")));
    }
    Ok(())
}

fn temporary_sibling(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path has no file name"))?;
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}-{unique}", std::process::id()));
    Ok(path.with_file_name(temp_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LineSet;
    use proptest::prelude::*;

    fn lines(ns: &[u32]) -> LineSet {
        ns.iter().filter_map(|&n| LineNo::new(n)).collect()
    }

    fn sample() -> CoverageData {
        let mut data = CoverageData::new(DataMeta {
            producer: "pycov 0.1.0".into(),
            python: "CPython 3.12.1".into(),
        });
        data.insert(
            "/p/ä b.py".into(),
            FileCoverage {
                source_hash: SourceHash::of(b"print(1)\n"),
                statements: lines(&[1, 2, 70]),
                excluded: lines(&[5]),
                executed: lines(&[1, 70]),
                line_count: 71,
                regions: vec![
                    CodeRegion {
                        kind: RegionKind::Class,
                        name: "Ä".into(),
                        start: LineNo::FIRST,
                        lines: LineRanges::default(),
                    },
                    CodeRegion {
                        kind: RegionKind::Function,
                        name: "Ä.method".into(),
                        start: LineNo::new(2).expect("line"),
                        lines: LineRanges::from_set(&lines(&[3, 4, 5, 70])),
                    },
                ],
            },
        );
        data.insert("/p/empty.py".into(), FileCoverage::default());
        data
    }

    fn encoded(data: &CoverageData) -> Vec<u8> {
        let mut out = Vec::new();
        encode(data, &mut out).expect("encode");
        out
    }

    #[test]
    fn round_trip() {
        let data = sample();
        let decoded = decode(&encoded(&data), Path::new("x")).expect("decode");
        assert_eq!(decoded, data);
    }

    #[test]
    fn version_1_files_are_read_without_regions() {
        // Version 1 is version 2 without line counts and regions.
        let mut data = CoverageData::default();
        data.insert(
            "/p/a.py".into(),
            FileCoverage {
                statements: lines(&[1, 2]),
                executed: lines(&[1]),
                ..FileCoverage::default()
            },
        );
        let current = encoded(&data);
        let body = &current[..current.len() - 8];
        // Drop the trailing line count and region count (two u32s).
        let mut old = body[..body.len() - 8].to_vec();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        let checksum = xxhash_rust::xxh3::xxh3_64(&old);
        old.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(decode(&old, Path::new("v1")).expect("version 1"), data);
    }

    #[test]
    fn truncated_files_are_rejected_at_every_length() {
        let bytes = encoded(&sample());
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len], Path::new("/d/.pycov")).expect_err("truncated");
            let message = err.to_string();
            assert!(message.contains("/d/.pycov"), "{message}");
        }
    }

    #[test]
    fn foreign_and_future_files_are_named() {
        let err = decode(b"SQLite format 3\0....", Path::new("/d/.coverage")).expect_err("foreign");
        assert_eq!(err.to_string(), "/d/.coverage is not a pycov data file");
        let mut future = encoded(&sample());
        future[8..12].copy_from_slice(&99u32.to_le_bytes());
        let err = decode(&future, Path::new("/d/.pycov")).expect_err("future");
        assert!(matches!(
            err,
            DataFileError::FutureVersion { found: 99, .. }
        ));
        assert!(err.to_string().contains("upgrade pycov"), "{err}");
    }

    #[test]
    fn flipped_bytes_fail_the_checksum() {
        let mut bytes = encoded(&sample());
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        let err = decode(&bytes, Path::new("f")).expect_err("damaged");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // A valid header claiming a huge line set for one file.
        let mut body = Vec::new();
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        for s in ["p", "py"] {
            body.extend_from_slice(&(s.len() as u32).to_le_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.push(b'/');
        body.extend_from_slice(&[0u8; 16]);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let checksum = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(&checksum.to_le_bytes());
        let err = decode(&body, Path::new("f")).expect_err("hostile");
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn atomic_write_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".pycov");
        check_writable(&path).expect("writable");
        write(&path, &sample()).expect("write");
        assert_eq!(read(&path).expect("read"), sample());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(".pycov")]);
    }

    #[test]
    fn unwritable_locations_are_reported_before_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no/such/dir/.pycov");
        let err = check_writable(&missing).expect_err("missing dir");
        assert!(
            err.to_string().starts_with("cannot write data file"),
            "{err}"
        );
        assert!(check_writable(dir.path()).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_is_identity(
            files in proptest::collection::btree_map(
                "[a-z/]{1,12}",
                (proptest::collection::vec(1u32..5000, 0..40),
                 proptest::collection::vec(1u32..5000, 0..10),
                 proptest::collection::vec(1u32..5000, 0..40)),
                0..8,
            )
        ) {
            let mut data = CoverageData::default();
            for (path, (stmts, excl, exec)) in files {
                let statements = lines(&stmts);
                let executed = lines(&exec).intersection(&statements);
                data.insert(path, FileCoverage {
                    source_hash: SourceHash::of(stmts.len().to_string().as_bytes()),
                    statements,
                    excluded: lines(&excl),
                    executed,
                    line_count: 5000,
                    regions: Vec::new(),
                });
            }
            let decoded = decode(&encoded(&data), Path::new("p")).expect("decode");
            prop_assert_eq!(decoded, data);
        }

        #[test]
        fn merging_encoded_bytes_is_merging_decoded_data(
            a in small_data(),
            b in small_data(),
        ) {
            let mut expected = a.clone();
            let expected_conflicts = expected.merge(b.clone());
            let mut merged = a;
            let conflicts = merge_encoded(&encoded(&b), Path::new("b"), &mut merged).expect("merge");
            prop_assert_eq!(conflicts, expected_conflicts);
            prop_assert_eq!(merged, expected);
        }
    }

    /// Few paths and few statement patterns, so inputs overlap and sometimes
    /// conflict; some files carry regions.
    fn small_data() -> impl Strategy<Value = CoverageData> {
        proptest::collection::btree_map(
            "[ab]{1,2}",
            (
                0u32..3,
                proptest::collection::vec(1u32..200, 0..20),
                any::<bool>(),
            ),
            0..5,
        )
        .prop_map(|files| {
            let mut data = CoverageData::default();
            for (path, (pattern, executed, with_regions)) in files {
                let statements: Vec<u32> = (1..200).filter(|n| n % (pattern + 2) == 0).collect();
                let regions = if with_regions {
                    vec![CodeRegion {
                        kind: RegionKind::Function,
                        name: "f".into(),
                        start: LineNo::FIRST,
                        lines: LineRanges::from_pairs(vec![(LineNo::FIRST, LineNo::FIRST)])
                            .unwrap_or_default(),
                    }]
                } else {
                    Vec::new()
                };
                data.insert(
                    path,
                    FileCoverage {
                        statements: lines(&statements),
                        executed: lines(&executed),
                        line_count: if with_regions { 200 } else { 0 },
                        regions,
                        ..FileCoverage::default()
                    },
                );
            }
            data
        })
    }

    #[test]
    fn a_bad_input_merges_nothing() {
        let mut merged = sample();
        let before = merged.clone();
        let mut other = sample();
        other.insert("/p/zz.py".into(), FileCoverage::default());
        let mut bytes = encoded(&other);
        // The last entry's regions made malformed, with the checksum made
        // right again: only the structure is wrong, after files that would
        // merge.
        let body_len = bytes.len() - 8;
        let regions_count_at = body_len - 4;
        bytes[regions_count_at..body_len].copy_from_slice(&1u32.to_le_bytes());
        bytes.truncate(body_len);
        bytes.extend_from_slice(&[7, 0, 0, 0, 0]);
        let checksum = xxhash_rust::xxh3::xxh3_64(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        let err = merge_encoded(&bytes, Path::new("bad"), &mut merged).expect_err("bad regions");
        assert!(err.to_string().starts_with("bad is damaged: "), "{err}");
        assert_eq!(merged, before);
    }
}
