//! Functions and classes of a source file, for per-function reports
//! (coverage.py's `CodeRegion`).

use crate::{LineNo, LineSet};

/// What a region is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// A `def` or `async def` (methods included).
    Function,
    /// A `class`.
    Class,
}

/// Sorted, disjoint, inclusive line ranges: compact for regions deep in a
/// file, where a bitset from line 1 would be mostly zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LineRanges(Vec<(LineNo, LineNo)>);

impl LineRanges {
    /// The ranges of the lines of `set`.
    pub fn from_set(set: &LineSet) -> LineRanges {
        let mut ranges: Vec<(LineNo, LineNo)> = Vec::new();
        for line in set {
            match ranges.last_mut() {
                Some((_, end)) if end.get() + 1 == line.get() => *end = line,
                _ => ranges.push((line, line)),
            }
        }
        LineRanges(ranges)
    }

    /// Builds ranges from raw pairs; `None` unless sorted, disjoint and
    /// each `start <= end`.
    pub fn from_pairs(pairs: Vec<(LineNo, LineNo)>) -> Option<LineRanges> {
        let ordered =
            pairs.iter().all(|(a, b)| a <= b) && pairs.windows(2).all(|w| w[0].1 < w[1].0);
        ordered.then_some(LineRanges(pairs))
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(LineNo, LineNo)] {
        &self.0
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The smallest and largest line.
    pub fn bounds(&self) -> Option<(LineNo, LineNo)> {
        Some((self.0.first()?.0, self.0.last()?.1))
    }

    /// Whether `line` is in a range.
    pub fn contains(&self, line: LineNo) -> bool {
        let index = self.0.partition_point(|&(start, _)| start <= line);
        index > 0 && line <= self.0[index - 1].1
    }

    /// The lines in the ranges, ascending, up to `last` at most.
    pub fn lines_up_to(&self, last: u32) -> impl Iterator<Item = LineNo> + '_ {
        self.0
            .iter()
            .take_while(move |&&(start, _)| start.get() <= last)
            .flat_map(move |&(start, end)| {
                (start.get()..=end.get().min(last)).filter_map(LineNo::new)
            })
    }

    /// The lines of `1..=line_count` outside every range of `all`.
    pub fn complement<'a>(
        all: impl Iterator<Item = &'a LineRanges>,
        line_count: u32,
    ) -> LineRanges {
        let mut covered: Vec<(u32, u32)> = all
            .flat_map(|r| r.0.iter().map(|&(a, b)| (a.get(), b.get())))
            .collect();
        covered.sort_unstable();
        let mut outside = Vec::new();
        let mut next = 1u32;
        for (start, end) in covered {
            if start > next {
                outside.push((next, (start - 1).min(line_count)));
            }
            next = next.max(end.saturating_add(1));
        }
        if next <= line_count {
            outside.push((next, line_count));
        }
        LineRanges(
            outside
                .into_iter()
                .filter(|&(a, b)| a <= b)
                .filter_map(|(a, b)| Some((LineNo::new(a)?, LineNo::new(b)?)))
                .collect(),
        )
    }

    /// Every line in the ranges.
    pub fn to_set(&self) -> LineSet {
        self.0
            .iter()
            .flat_map(|&(start, end)| (start.get()..=end.get()).filter_map(LineNo::new))
            .collect()
    }
}

/// A function or class: its qualified name (`Class.method`,
/// `outer.inner`), its `def`/`class` line, and the lines it owns as
/// coverage.py counts them (a function's body without nested functions; a
/// class's methods, not its attribute lines).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CodeRegion {
    /// Function or class.
    pub kind: RegionKind,
    /// The qualified name.
    pub name: String,
    /// The `def` / `class` line.
    pub start: LineNo,
    /// The lines of the region (may include blank and comment lines).
    pub lines: LineRanges,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u32) -> LineNo {
        LineNo::new(n).expect("line")
    }

    #[test]
    fn ranges_from_sets_and_back() {
        let set: LineSet = [3, 4, 5, 9, 11, 12]
            .into_iter()
            .filter_map(LineNo::new)
            .collect();
        let ranges = LineRanges::from_set(&set);
        assert_eq!(
            ranges.ranges(),
            &[(line(3), line(5)), (line(9), line(9)), (line(11), line(12))]
        );
        assert_eq!(ranges.to_set(), set);
        assert!(
            ranges.contains(line(4)) && ranges.contains(line(12)) && !ranges.contains(line(10))
        );
        assert_eq!(ranges.bounds(), Some((line(3), line(12))));
        let upto: Vec<u32> = ranges.lines_up_to(11).map(LineNo::get).collect();
        assert_eq!(upto, vec![3, 4, 5, 9, 11]);
        let others =
            LineRanges::from_set(&[4, 5, 6, 7].into_iter().filter_map(LineNo::new).collect());
        let outside = LineRanges::complement([&ranges, &others].into_iter(), 14);
        assert_eq!(
            outside.ranges(),
            &[
                (line(1), line(2)),
                (line(8), line(8)),
                (line(10), line(10)),
                (line(13), line(14))
            ]
        );
        assert_eq!(
            LineRanges::complement(std::iter::empty(), 0),
            LineRanges::default()
        );
        assert_eq!(
            LineRanges::complement([&ranges].into_iter(), 4).ranges(),
            &[(line(1), line(2))]
        );
        assert!(LineRanges::from_pairs(vec![(line(5), line(4))]).is_none());
        assert!(LineRanges::from_pairs(vec![(line(1), line(4)), (line(4), line(6))]).is_none());
    }
}
