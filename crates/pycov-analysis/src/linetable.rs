//! Reading the line numbers out of a code object's `co_linetable`.
//!
//! The format (CPython `Objects/locations.md`, the same for 3.11-3.13) is a
//! sequence of entries; each starts with a byte `1cccclll`: `cccc` is the
//! entry's kind, `lll + 1` the number of code units it covers. Kinds:
//!
//! | kind | line | extra bytes |
//! |---|---|---|
//! | 0-9 (short) | unchanged | 1 |
//! | 10-12 (one line) | `+= kind - 10` | 2 |
//! | 13 (no columns) | `+= svarint` | - |
//! | 14 (long) | `+= svarint` | varint end-line delta, varint column, varint end column |
//! | 15 (none) | no line | - |
//!
//! Varints are 6-bit little-endian chunks with bit 6 as continuation; a
//! signed varint keeps its sign in bit 0. This yields the same lines as
//! `code.co_lines()` without creating a Python tuple per range.

/// Calls `emit` with the line of every entry that has one (possibly 0 or
/// negative for synthetic code, and repeated; callers filter).
pub fn for_each_line(linetable: &[u8], first_line: i64, mut emit: impl FnMut(i64)) {
    for_each_range(linetable, first_line, |_, line| {
        if let Some(line) = line {
            emit(line);
        }
    });
}

/// The line of each code unit (2-byte instruction slot), in order: index
/// `offset / 2` of the result is the line of the instruction at byte
/// `offset`, or `None` where the table has no line.
pub fn lines_by_code_unit(linetable: &[u8], first_line: i64) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for_each_range(linetable, first_line, |units, line| {
        out.extend(std::iter::repeat_n(line, units));
    });
    out
}

/// Calls `emit(code_units, line)` for every entry of the table.
pub fn for_each_range(linetable: &[u8], first_line: i64, mut emit: impl FnMut(usize, Option<i64>)) {
    for (units, line) in Entries::new(linetable, first_line) {
        emit(units, line);
    }
}

/// The entries of a line table, in order: how many code units each covers
/// and its line (`None`: no line). Stops at the end or at a truncated
/// entry.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    table: &'a [u8],
    pos: usize,
    line: i64,
}

impl<'a> Entries<'a> {
    pub fn new(linetable: &'a [u8], first_line: i64) -> Self {
        Entries {
            table: linetable,
            pos: 0,
            line: first_line,
        }
    }

    /// The next unsigned varint, 0 if the table ends inside it.
    #[inline]
    fn varint(&mut self) -> i64 {
        let mut value: i64 = 0;
        let mut shift = 0u32;
        while let Some(&b) = self.table.get(self.pos) {
            self.pos += 1;
            value |= i64::from(b & 63) << shift;
            shift += 6;
            if b & 64 == 0 || shift > 60 {
                break;
            }
        }
        value
    }

    #[inline]
    fn signed_varint(&mut self) -> i64 {
        let raw = self.varint();
        if raw & 1 != 0 {
            -(raw >> 1)
        } else {
            raw >> 1
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = (usize, Option<i64>);

    // Inlined into its loops: the compiler then keeps the state in registers
    // and drops the `Option`s (line data for each code object at its first
    // call decodes its whole table).
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let header = *self.table.get(self.pos)?;
        self.pos += 1;
        let units = usize::from(header & 7) + 1;
        match (header >> 3) & 15 {
            15 => return Some((units, None)),
            14 => {
                self.line += self.signed_varint();
                // End line, column and end column.
                self.varint();
                self.varint();
                self.varint();
            }
            13 => self.line += self.signed_varint(),
            kind @ 10..=12 => {
                self.line += i64::from(kind - 10);
                self.pos += 2;
            }
            _ => self.pos += 1,
        }
        Some((units, Some(self.line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(table: &[u8], first: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for_each_line(table, first, |l| out.push(l));
        out
    }

    #[test]
    fn entry_kinds() {
        // 3.12's `def f():\n    return 1` at line 1: RESUME on line 1 (one-line
        // form, delta 0), then `return 1` on line 2 (one-line form, delta 1).
        assert_eq!(lines(&[0xd0, 0x00, 0x00, 0xd8, 0x04, 0x0c], 1), vec![1, 2]);
        // No-location entry, then a long form going back 3 lines (svarint 7 = -3).
        assert_eq!(lines(&[0xf8, 0xf0, 0x07, 0x00, 0x01, 0x01], 10), vec![7]);
        // No-column form, +2 lines (svarint 4), then a short form on the same line.
        assert_eq!(lines(&[0xe8, 0x04, 0x80, 0x05], 1), vec![3, 3]);
        // A multi-chunk varint: delta +100 = svarint 200 = 0b11_001000.
        assert_eq!(lines(&[0xe8, 0x48, 0x03], 1), vec![101]);
        // Truncated input does not panic.
        assert_eq!(lines(&[0xe8], 1), vec![1]);
    }

    #[test]
    fn lines_per_code_unit() {
        // Two units on line 1, one unit without a line, three on line 3.
        let table = [0xd1, 0x00, 0x00, 0xf8, 0xea, 0x04];
        assert_eq!(
            lines_by_code_unit(&table, 1),
            vec![Some(1), Some(1), None, Some(3), Some(3), Some(3)]
        );
    }
}
