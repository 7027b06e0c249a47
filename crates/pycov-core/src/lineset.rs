//! Compact sets of line numbers.
//!
//! [`LineSet`] is the plain bitset of the coverage model; [`AtomicLineSet`] is
//! the fixed-size bitset the tracer writes into from any thread.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::LineNo;

const WORD_BITS: usize = 64;

fn word_and_mask(line: LineNo) -> (usize, u64) {
    let index = line.index();
    (index / WORD_BITS, 1u64 << (index % WORD_BITS))
}

/// A set of line numbers stored as a bitset.
///
/// Contract:
/// - bit `n` stands for line `n`; bit 0 is never set, so the storage of a file
///   is sized to its last line (`last / 64 + 1` words);
/// - the storage never has trailing zero words, so two sets with the same lines
///   are equal whatever operations built them;
/// - lines are [`LineNo`]s, so the largest possible set is bounded by
///   [`LineNo::MAX`]; growth happens only on insertion of a larger line;
/// - union, intersection and difference are word-wise and never allocate more
///   than the larger operand.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LineSet {
    words: Vec<u64>,
}

impl LineSet {
    /// The empty set.
    pub fn new() -> LineSet {
        LineSet { words: Vec::new() }
    }

    /// Builds a set from raw little-endian words (bit `n` = line `n`), as
    /// stored in data files. Returns `None` if bit 0 is set or a bit lies
    /// beyond [`LineNo::MAX`].
    pub fn from_words(mut words: Vec<u64>) -> Option<LineSet> {
        if words.first().is_some_and(|w| w & 1 != 0) {
            return None;
        }
        if words.len() > LineNo::MAX as usize / WORD_BITS + 1 {
            let beyond = &words[LineNo::MAX as usize / WORD_BITS + 1..];
            if beyond.iter().any(|w| *w != 0) {
                return None;
            }
        }
        let last_word = LineNo::MAX as usize / WORD_BITS;
        if let Some(word) = words.get(last_word) {
            let allowed_bits = LineNo::MAX as usize % WORD_BITS + 1;
            if allowed_bits < WORD_BITS && word >> allowed_bits != 0 {
                return None;
            }
        }
        while words.last() == Some(&0) {
            words.pop();
        }
        Some(LineSet { words })
    }

    /// The raw words (bit `n` = line `n`), without trailing zero words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Adds a line; returns whether it was new.
    pub fn insert(&mut self, line: LineNo) -> bool {
        let (word, mask) = word_and_mask(line);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was_set = self.words[word] & mask != 0;
        self.words[word] |= mask;
        !was_set
    }

    /// Removes a line; returns whether it was present.
    pub fn remove(&mut self, line: LineNo) -> bool {
        let (word, mask) = word_and_mask(line);
        let Some(slot) = self.words.get_mut(word) else {
            return false;
        };
        let was_set = *slot & mask != 0;
        *slot &= !mask;
        self.trim();
        was_set
    }

    /// Whether `line` is in the set.
    pub fn contains(&self, line: LineNo) -> bool {
        let (word, mask) = word_and_mask(line);
        self.words.get(word).is_some_and(|w| w & mask != 0)
    }

    /// The number of lines in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set has no lines.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The largest line in the set.
    pub fn last(&self) -> Option<LineNo> {
        let (index, word) = self.words.iter().enumerate().next_back()?;
        let bit = WORD_BITS - 1 - word.leading_zeros() as usize;
        LineNo::new((index * WORD_BITS + bit) as u32)
    }

    /// Lines in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            words: &self.words,
            index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    /// Adds every line of `other` (word-wise OR).
    pub fn union_with(&mut self, other: &LineSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Keeps only lines that are also in `other` (word-wise AND).
    pub fn intersect_with(&mut self, other: &LineSet) {
        self.words.truncate(other.words.len());
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine &= theirs;
        }
        self.trim();
    }

    /// Removes every line of `other` (word-wise AND NOT).
    pub fn subtract(&mut self, other: &LineSet) {
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine &= !theirs;
        }
        self.trim();
    }

    /// `self ∪ other` as a new set.
    pub fn union(&self, other: &LineSet) -> LineSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// `self ∩ other` as a new set.
    pub fn intersection(&self, other: &LineSet) -> LineSet {
        let mut out = self.clone();
        out.intersect_with(other);
        out
    }

    /// `self \ other` as a new set.
    pub fn difference(&self, other: &LineSet) -> LineSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Whether every line of `self` is in `other`.
    pub fn is_subset(&self, other: &LineSet) -> bool {
        self.words.iter().enumerate().all(|(i, w)| {
            let theirs = other.words.get(i).copied().unwrap_or(0);
            w & !theirs == 0
        })
    }

    /// Whether the two sets share a line.
    pub fn intersects(&self, other: &LineSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}

impl fmt::Debug for LineSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(LineNo::get)).finish()
    }
}

impl FromIterator<LineNo> for LineSet {
    fn from_iter<I: IntoIterator<Item = LineNo>>(iter: I) -> LineSet {
        let mut set = LineSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<LineNo> for LineSet {
    fn extend<I: IntoIterator<Item = LineNo>>(&mut self, iter: I) {
        for line in iter {
            self.insert(line);
        }
    }
}

impl<'a> IntoIterator for &'a LineSet {
    type Item = LineNo;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Why bytes do not hold an encoded [`LineSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineSetDecodeError {
    /// The bytes end early.
    #[error("truncated")]
    Truncated,
    /// More words than lines up to [`LineNo::MAX`] need.
    #[error("line set larger than the largest allowed line {}", LineNo::MAX)]
    TooLarge,
    /// Bit 0 (line 0) is set.
    #[error("invalid line set (line 0)")]
    LineZero,
}

impl LineSet {
    /// Appends the set: a little-endian `u32` word count, then the words.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.words.len() as u32).to_le_bytes());
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// Reads a set written by [`LineSet::encode_into`] at `*pos`, advancing
    /// it. The word count is checked against [`LineNo::MAX`] and the input
    /// length before anything is allocated.
    pub fn decode_from(bytes: &[u8], pos: &mut usize) -> Result<LineSet, LineSetDecodeError> {
        EncodedLineSet::read(bytes, pos).map(EncodedLineSet::to_set)
    }

    /// Whether the set equals an encoded one, without decoding it.
    pub(crate) fn equals_encoded(&self, other: EncodedLineSet<'_>) -> bool {
        let mut theirs = other.words();
        self.words.iter().all(|&w| theirs.next() == Some(w)) && theirs.all(|w| w == 0)
    }

    /// Adds the lines of an encoded set, without decoding it.
    pub(crate) fn union_encoded(&mut self, other: EncodedLineSet<'_>) {
        let len = other.0.len() / 8;
        if len > self.words.len() {
            self.words.resize(len, 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(other.words()) {
            *mine |= theirs;
        }
        self.trim();
    }
}

/// A set as a data file stores it, read in place and checked: little-endian
/// words, bit `n` = line `n` (possibly with trailing zero words).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodedLineSet<'a>(&'a [u8]);

impl<'a> EncodedLineSet<'a> {
    /// Reads and checks the set at `*pos`, advancing it.
    pub(crate) fn read(bytes: &'a [u8], pos: &mut usize) -> Result<Self, LineSetDecodeError> {
        let count = bytes
            .get(*pos..*pos + 4)
            .ok_or(LineSetDecodeError::Truncated)?;
        let words = u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize;
        if words > LineNo::MAX as usize / WORD_BITS + 1 {
            return Err(LineSetDecodeError::TooLarge);
        }
        let start = *pos + 4;
        let raw = bytes
            .get(start..start + words * 8)
            .ok_or(LineSetDecodeError::Truncated)?;
        let set = EncodedLineSet(raw);
        if set.words().next().is_some_and(|w| w & 1 != 0) {
            return Err(LineSetDecodeError::LineZero);
        }
        let last_word = LineNo::MAX as usize / WORD_BITS;
        let allowed_bits = LineNo::MAX as usize % WORD_BITS + 1;
        if let Some(word) = set.words().nth(last_word) {
            if allowed_bits < WORD_BITS && word >> allowed_bits != 0 {
                return Err(LineSetDecodeError::TooLarge);
            }
        }
        *pos = start + words * 8;
        Ok(set)
    }

    fn words(self) -> impl Iterator<Item = u64> + 'a {
        self.0
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }

    /// The set, decoded.
    pub(crate) fn to_set(self) -> LineSet {
        let mut set = LineSet {
            words: self.words().collect(),
        };
        set.trim();
        set
    }
}

/// Ascending iterator over a [`LineSet`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    words: &'a [u64],
    index: usize,
    current: u64,
}

impl Iterator for Iter<'_> {
    type Item = LineNo;

    fn next(&mut self) -> Option<LineNo> {
        loop {
            if self.current != 0 {
                let bit = self.current.trailing_zeros() as usize;
                self.current &= self.current - 1;
                return LineNo::new((self.index * WORD_BITS + bit) as u32);
            }
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
    }
}

/// A fixed-capacity bitset of lines that any thread may set concurrently.
///
/// The tracer sizes it once, when a file is first seen, and sets bits with a
/// relaxed `fetch_or`: bits only ever go from 0 to 1 and are read after the
/// traced program has stopped, so no ordering is needed.
#[derive(Debug)]
pub struct AtomicLineSet {
    words: Box<[AtomicU64]>,
}

impl AtomicLineSet {
    /// A set able to hold lines `1..=max_line` (clamped to [`LineNo::MAX`]).
    pub fn with_max_line(max_line: u32) -> AtomicLineSet {
        let max_line = max_line.min(LineNo::MAX) as usize;
        let words = (0..max_line / WORD_BITS + 1).map(|_| AtomicU64::new(0));
        AtomicLineSet {
            words: words.collect(),
        }
    }

    /// The largest line this set can hold.
    pub fn max_line(&self) -> u32 {
        ((self.words.len() * WORD_BITS - 1) as u32).min(LineNo::MAX)
    }

    /// Sets `line`; returns `false` if it lies beyond the capacity.
    #[inline]
    pub fn insert(&self, line: LineNo) -> bool {
        let (word, mask) = word_and_mask(line);
        match self.words.get(word) {
            Some(slot) => {
                // A plain load first: once a line is set, the common repeat
                // costs no read-modify-write (matters on 3.11, where every
                // line event arrives here).
                if slot.load(Ordering::Relaxed) & mask == 0 {
                    slot.fetch_or(mask, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Whether `line` is set.
    #[inline]
    pub fn contains(&self, line: LineNo) -> bool {
        let (word, mask) = word_and_mask(line);
        self.words
            .get(word)
            .is_some_and(|slot| slot.load(Ordering::Relaxed) & mask != 0)
    }

    /// The lines set so far.
    pub fn snapshot(&self) -> LineSet {
        let words = self
            .words
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .collect();
        LineSet::from_words(words).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(ns: &[u32]) -> LineSet {
        ns.iter()
            .map(|&n| LineNo::new(n).expect("valid line"))
            .collect()
    }

    fn numbers(set: &LineSet) -> Vec<u32> {
        set.iter().map(LineNo::get).collect()
    }

    #[test]
    fn insert_contains_iterate() {
        let set = lines(&[130, 1, 64, 63, 65, 1]);
        assert_eq!(numbers(&set), vec![1, 63, 64, 65, 130]);
        assert_eq!(set.len(), 5);
        assert!(set.contains(LineNo::new(64).expect("line")));
        assert!(!set.contains(LineNo::new(2).expect("line")));
        assert!(!set.contains(LineNo::new(100_000).expect("line")));
        assert_eq!(set.last().map(LineNo::get), Some(130));
        assert_eq!(set.words().len(), 3);
    }

    #[test]
    fn set_operations_keep_storage_canonical() {
        let a = lines(&[1, 2, 200]);
        let b = lines(&[2, 3]);
        assert_eq!(numbers(&a.union(&b)), vec![1, 2, 3, 200]);
        let inter = a.intersection(&b);
        assert_eq!(numbers(&inter), vec![2]);
        assert_eq!(inter, lines(&[2]));
        assert_eq!(inter.words().len(), 1);
        let diff = a.difference(&lines(&[200]));
        assert_eq!(diff, lines(&[1, 2]));
        assert_eq!(diff.words().len(), 1);
        assert!(lines(&[2]).is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(a.intersects(&b));
        assert!(!a.intersects(&lines(&[5])));
        let mut removed = a.clone();
        assert!(removed.remove(LineNo::new(200).expect("line")));
        assert_eq!(removed, lines(&[1, 2]));
        assert!(LineSet::new().is_empty());
        assert_eq!(LineSet::new().last(), None);
    }

    #[test]
    fn from_words_rejects_bit_zero_and_out_of_range_bits() {
        assert!(LineSet::from_words(vec![1]).is_none());
        assert_eq!(LineSet::from_words(vec![0b110, 0, 0]), Some(lines(&[1, 2])));
        let too_many = vec![0u64; LineNo::MAX as usize / 64 + 2];
        assert!(LineSet::from_words(too_many.clone()).is_some());
        let mut beyond = too_many;
        *beyond.last_mut().expect("non-empty") = 1;
        assert!(LineSet::from_words(beyond).is_none());
    }

    #[test]
    fn encoding_round_trips_and_checks_sizes() {
        let set = lines(&[1, 64, 65, 1000]);
        let mut bytes = vec![0xAA];
        set.encode_into(&mut bytes);
        let mut pos = 1;
        assert_eq!(LineSet::decode_from(&bytes, &mut pos), Ok(set));
        assert_eq!(pos, bytes.len());
        for len in 1..bytes.len() {
            assert!(LineSet::decode_from(&bytes[..len], &mut 1).is_err());
        }
        let huge = u32::MAX.to_le_bytes();
        assert_eq!(
            LineSet::decode_from(&huge, &mut 0),
            Err(LineSetDecodeError::TooLarge)
        );
    }

    #[test]
    fn atomic_set_respects_capacity() {
        let set = AtomicLineSet::with_max_line(10);
        assert!(set.max_line() >= 10);
        assert!(set.insert(LineNo::new(10).expect("line")));
        assert!(set.insert(LineNo::new(10).expect("line")));
        assert!(!set.insert(LineNo::new(1000).expect("line")));
        assert_eq!(set.snapshot(), lines(&[10]));
    }

    #[test]
    fn atomic_set_is_shared_between_threads() {
        let set = AtomicLineSet::with_max_line(4096);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let set = &set;
                scope.spawn(move || {
                    for n in (1..=4096u32).filter(|n| n % 4 == t) {
                        set.insert(LineNo::new(n).expect("line"));
                    }
                });
            }
        });
        assert_eq!(set.snapshot().len(), 4096);
    }
}
