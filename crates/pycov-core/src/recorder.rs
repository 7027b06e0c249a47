//! The thread-safe store the tracer writes executed lines into.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::{AtomicLineSet, LineNo, LineSet};

/// Index of a file in a [`Recorder`]; stable for the recorder's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(u32);

impl FileId {
    /// The id as an integer, for packing into a tracer's per-code cache.
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The inverse of [`FileId::as_u32`].
    pub fn from_u32(raw: u32) -> FileId {
        FileId(raw)
    }
}

/// One measured file: where it is and which lines ran.
#[derive(Debug)]
pub struct RecordedFile {
    path: String,
    lines: AtomicLineSet,
    /// Lines beyond the capacity chosen when the file was registered (the
    /// file grew during the run). Rare, so a mutex is fine; a set, because a
    /// hot line out there reports on every event on 3.11.
    overflow: Mutex<BTreeSet<LineNo>>,
}

impl RecordedFile {
    /// The canonical path the file was registered under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records one executed line. This is the tracer's hot path: one bounds
    /// check and at most one atomic OR.
    #[inline]
    pub fn record(&self, line: LineNo) {
        if !self.lines.insert(line) {
            self.record_overflow(line);
        }
    }

    #[cold]
    fn record_overflow(&self, line: LineNo) {
        if let Ok(mut overflow) = self.overflow.lock() {
            overflow.insert(line);
        }
    }

    /// Whether `line` was recorded.
    pub fn contains(&self, line: LineNo) -> bool {
        self.lines.contains(line)
            || self
                .overflow
                .lock()
                .is_ok_and(|overflow| overflow.contains(&line))
    }

    /// Every line recorded so far.
    pub fn executed(&self) -> LineSet {
        let mut set = self.lines.snapshot();
        if let Ok(overflow) = self.overflow.lock() {
            set.extend(overflow.iter().copied());
        }
        set
    }
}

/// Executed lines per file, written by tracer callbacks on any thread.
///
/// Registration (once per file, rare) takes a lock; recording a line goes
/// through [`Recorder::get`], which is lock-free, and then
/// [`RecordedFile::record`].
#[derive(Debug, Default)]
pub struct Recorder {
    files: boxcar::Vec<RecordedFile>,
    ids: Mutex<HashMap<String, FileId>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The id of `path`, registering it with room for `max_line` lines if it
    /// is new. Registering the same path twice gives the same id.
    pub fn register(&self, path: &str, max_line: u32) -> FileId {
        let mut ids = match self.ids.lock() {
            Ok(ids) => ids,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(id) = ids.get(path) {
            return *id;
        }
        let index = self.files.push(RecordedFile {
            path: path.to_owned(),
            lines: AtomicLineSet::with_max_line(max_line),
            overflow: Mutex::new(BTreeSet::new()),
        });
        let id = FileId(u32::try_from(index).unwrap_or(u32::MAX));
        ids.insert(path.to_owned(), id);
        id
    }

    /// The file with this id.
    #[inline]
    pub fn get(&self, id: FileId) -> Option<&RecordedFile> {
        self.files.get(id.0 as usize)
    }

    /// Every registered file with its id, in registration order.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &RecordedFile)> {
        self.files
            .iter()
            .map(|(index, file)| (FileId(u32::try_from(index).unwrap_or(u32::MAX)), file))
    }

    /// The number of registered files.
    pub fn len(&self) -> usize {
        self.files.count()
    }

    /// Whether no file was registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_idempotent_and_lines_accumulate() {
        let recorder = Recorder::new();
        let a = recorder.register("/p/a.py", 10);
        let b = recorder.register("/p/b.py", 10);
        assert_ne!(a, b);
        assert_eq!(recorder.register("/p/a.py", 99), a);
        let file = recorder.get(a).expect("registered");
        file.record(LineNo::new(3).expect("line"));
        file.record(LineNo::new(3).expect("line"));
        // Beyond the capacity chosen at registration: still recorded.
        file.record(LineNo::new(5000).expect("line"));
        let lines: Vec<u32> = file.executed().iter().map(LineNo::get).collect();
        assert_eq!(lines, vec![3, 5000]);
        assert_eq!(recorder.len(), 2);
        let paths: Vec<&str> = recorder.files().map(|(_, file)| file.path()).collect();
        assert_eq!(paths, vec!["/p/a.py", "/p/b.py"]);
        assert!(recorder.get(FileId::from_u32(7)).is_none());
    }

    #[test]
    fn threads_record_into_the_same_file() {
        let recorder = Recorder::new();
        let id = recorder.register("/p/t.py", 1000);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let recorder = &recorder;
                scope.spawn(move || {
                    let file = recorder.get(id).expect("registered");
                    for n in (1..=1000).filter(|n| n % 4 == t) {
                        file.record(LineNo::new(n).expect("line"));
                    }
                });
            }
        });
        assert_eq!(recorder.get(id).expect("registered").executed().len(), 1000);
    }
}
