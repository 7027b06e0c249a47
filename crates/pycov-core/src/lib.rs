//! pycov's data model, shared by every other crate; it knows nothing of
//! Python the interpreter.
//!
//! - [`LineNo`], [`LineSet`] and [`AtomicLineSet`]: line numbers and bitsets;
//! - [`Recorder`]: where a tracer records executed lines, from any thread;
//! - [`CoverageData`] / [`FileCoverage`]: the coverage model and its union;
//! - [`datafile`]: the versioned `.pycov` file;
//! - [`select`]: which files are measured; [`ExcludeRules`]: which lines not.
//!
//! ```
//! use pycov_core::{LineNo, LineSet};
//!
//! let statements: LineSet = [1, 2, 3, 5].into_iter().filter_map(LineNo::new).collect();
//! let executed: LineSet = [1, 5].into_iter().filter_map(LineNo::new).collect();
//! let missing = statements.difference(&executed);
//! assert_eq!(missing.iter().map(LineNo::get).collect::<Vec<_>>(), vec![2, 3]);
//! ```

pub mod datafile;
mod exclude;
mod line;
mod lineset;
mod model;
mod options;
pub mod parallel;
pub mod paths;
mod recorder;
mod region;
pub mod select;

pub use exclude::{ExcludeMatchError, ExcludePatternError, ExcludeRules, DEFAULT_EXCLUDE};
pub use line::LineNo;
pub use lineset::{AtomicLineSet, Iter as LineSetIter, LineSet, LineSetDecodeError};
pub use model::{to_hex, Counts, CoverageData, DataMeta, FileCoverage, MergeConflict, SourceHash};
pub use options::{ProcessStart, ProcessStartError, RunOptions, RunTarget, PROCESS_START_VARIABLE};
pub use paths::{PathAliasError, PathAliases};
pub use recorder::{FileId, RecordedFile, Recorder};
pub use region::{CodeRegion, LineRanges, RegionKind};
pub use select::{Decision, FilePatterns, FileSelector, InterpreterPaths, PatternError, Selection};
