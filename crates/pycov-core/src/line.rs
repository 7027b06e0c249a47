//! One-based source line numbers.

use std::fmt;
use std::num::NonZeroU32;

/// A 1-based line number in a source file.
///
/// Line numbers are bounded by [`LineNo::MAX`] so that a bitset indexed by
/// them never needs more than a few megabytes, whatever a data file or a
/// foreign report claims.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineNo(NonZeroU32);

impl LineNo {
    /// The largest line number pycov accepts (2^24 - 1, a 2 MiB bitset).
    pub const MAX: u32 = (1 << 24) - 1;

    /// Line 1.
    pub const FIRST: LineNo = LineNo(NonZeroU32::MIN);

    /// `Some` for `1..=LineNo::MAX`, `None` for 0 and anything larger.
    pub fn new(line: u32) -> Option<LineNo> {
        if line > Self::MAX {
            return None;
        }
        NonZeroU32::new(line).map(LineNo)
    }

    /// Like [`LineNo::new`] for wider or signed integers.
    pub fn from_i64(line: i64) -> Option<LineNo> {
        u32::try_from(line).ok().and_then(LineNo::new)
    }

    /// The line number as an integer (never 0).
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The line number as an index into a bitset (bit 0 is never used).
    pub(crate) fn index(self) -> usize {
        self.0.get() as usize
    }
}

impl fmt::Debug for LineNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

impl fmt::Display for LineNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_too_large_are_rejected() {
        assert_eq!(LineNo::new(0), None);
        assert_eq!(LineNo::new(LineNo::MAX + 1), None);
        assert_eq!(LineNo::from_i64(-3), None);
        assert_eq!(LineNo::from_i64(4_000_000_000), None);
        assert_eq!(LineNo::new(LineNo::MAX).map(LineNo::get), Some(LineNo::MAX));
        assert_eq!(LineNo::new(7).map(|l| l.to_string()), Some("7".to_string()));
    }
}
