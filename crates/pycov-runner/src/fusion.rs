//! Python 3.12 only: puts back the superinstructions that instrumentation
//! takes out of running code (one of the passes of `tidy`).
//!
//! CPython 3.12 fuses some adjacent instruction pairs (`LOAD_FAST` +
//! `LOAD_CONST` into `LOAD_FAST__LOAD_CONST`, and four more) when it creates a
//! code object. The first time `sys.monitoring` instruments a code object it
//! splits all of them for good, since a superinstruction steps over its second
//! half and would skip an event there. Under pycov every code object that runs
//! is instrumented once (the global `PY_START`, then `LINE` for measured code),
//! which makes CPU-bound programs 3-5 % slower even after every event has been
//! disabled (measured on `fib`: same result with the events of a pure-Python
//! tool, and back to plain speed once the pairs are fused again).
//!
//! An instruction whose events are all disabled is plain again, so a pair of
//! two plain instructions can be fused again. A pair with an instrumented half
//! (a line that has not run yet) waits for a later pass. CPython splits
//! superinstructions again itself whenever it instruments a code object anew
//! (another tool, `restart_events`), as it does for the ones it creates.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::ffi;
use crate::opcodes::{instruction_offsets, Opcodes};

/// The pairs CPython 3.12's `_PyCode_Quicken` fuses. The fused opcodes
/// are read off a function the interpreter quickened itself (only `dis`
/// numbers them, and importing it costs 3 ms).
const PAIR_NAMES: [(&str, &str); 5] = [
    ("LOAD_CONST", "LOAD_FAST"),
    ("LOAD_FAST", "LOAD_CONST"),
    ("LOAD_FAST", "LOAD_FAST"),
    ("STORE_FAST", "LOAD_FAST"),
    ("STORE_FAST", "STORE_FAST"),
];

/// A function whose bytecode holds each of the five pairs, to check the
/// tables and the memory layout against what the interpreter itself fused.
const PROBE: &std::ffi::CStr =
    c"def probe(a, b):\n    x, y = a, b\n    z = x + 1\n    return 2 + z + y\n";

/// The opcodes involved, read from the running interpreter.
#[derive(Debug, Clone)]
pub(crate) struct OpcodeTable {
    /// (first, second, fused) base opcodes.
    pairs: Vec<(u8, u8, u8)>,
    /// Inline cache entries after each base opcode.
    caches: [u8; 256],
    /// Opcodes from here up are instrumented ones (`INSTRUMENTED_LINE`...).
    min_instrumented: u8,
}

/// What one pass over a code object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pass {
    /// Pairs fused now.
    pub fused: usize,
    /// Pairs left alone because a half is instrumented.
    pub blocked: usize,
    /// The byte offset and opcode of the first pair fused after the pass:
    /// while it stays, the code was not instrumented anew.
    pub sentinel: Option<(usize, u8)>,
}

impl OpcodeTable {
    /// The table of the running interpreter, with fused opcodes from
    /// `probe_base`/`probe_live` (the `co_code` and live bytecode of a
    /// function that never ran). `None` if something is missing.
    fn from_interpreter(
        opcodes: &Opcodes,
        probe_base: &[u8],
        probe_live: &[u8],
    ) -> Option<OpcodeTable> {
        let mut pairs = Vec::new();
        for (first, second) in PAIR_NAMES {
            let (first, second) = (opcodes.number(first)?, opcodes.number(second)?);
            let fused = first_pair(probe_base, &opcodes.caches, first, second)
                .and_then(|at| probe_live.get(at).copied())
                .filter(|&fused| fused != first && fused < opcodes.min_instrumented)?;
            pairs.push((first, second, fused));
        }
        Some(OpcodeTable {
            pairs,
            caches: opcodes.caches,
            min_instrumented: opcodes.min_instrumented,
        })
    }

    /// The table for this interpreter: only CPython 3.12, and only when its
    /// own superinstructions look exactly as we would make them.
    pub(crate) fn for_interpreter(py: Python<'_>, opcodes: &Opcodes) -> Option<OpcodeTable> {
        if py.version_info() < (3, 12) || py.version_info() >= (3, 13) {
            return None;
        }
        let globals = PyDict::new(py);
        py.run(PROBE, Some(&globals), None).ok()?;
        let code = globals.get_item("probe").ok()??.getattr("__code__").ok()?;
        let base = code.getattr("co_code").ok()?;
        let base = base.cast::<PyBytes>().ok()?.as_bytes();
        let live = ffi::with_adaptive_code(&code, |live| live.to_vec())?;
        let table = OpcodeTable::from_interpreter(opcodes, base, &live)?;
        table.matches_fresh_code(base, &live).then_some(table)
    }

    /// Each fused opcode with the base opcode it stands for.
    pub(crate) fn fused_opcodes(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.pairs.iter().map(|&(first, _, fused)| (fused, first))
    }

    fn fused(&self, first: u8, second: u8) -> Option<u8> {
        self.pairs
            .iter()
            .find(|&&(a, b, _)| a == first && b == second)
            .map(|&(_, _, fused)| fused)
    }

    /// Fuses, in `live` (a code object's adaptive bytecode), every pair
    /// whose two halves are plain there. `base` is the same code's
    /// `co_code`: base opcodes, which tell where instructions start. `None`
    /// if the two do not belong together, which would mean the layout is not
    /// the one we expect.
    pub(crate) fn fuse(&self, base: &[u8], live: &mut [u8]) -> Option<Pass> {
        if base.len() != live.len() || !base.len().is_multiple_of(2) {
            return None;
        }
        // Everything is checked before the first write.
        let mut writes = Vec::new();
        let mut blocked = 0;
        let mut sentinel = None;
        for (first_at, at) in adjacent_instructions(base, &self.caches) {
            let Some(fused) = self.fused(base[first_at], base[at]) else {
                continue;
            };
            if live[first_at + 1] != base[first_at + 1] || live[at + 1] != base[at + 1] {
                return None;
            }
            let (first_live, second_live) = (live[first_at], live[at]);
            if first_live >= self.min_instrumented || second_live >= self.min_instrumented {
                blocked += 1;
            } else if first_live == base[first_at] {
                writes.push((first_at, fused));
                sentinel = sentinel.or(Some((first_at, fused)));
            } else if first_live == fused {
                sentinel = sentinel.or(Some((first_at, fused)));
            } else {
                return None;
            }
        }
        for &(at, fused) in &writes {
            live[at] = fused;
        }
        Some(Pass {
            fused: writes.len(),
            blocked,
            sentinel,
        })
    }

    /// Whether `live`, the bytecode of a code object that never ran, is
    /// what fusing `base` gives.
    fn matches_fresh_code(&self, base: &[u8], live: &[u8]) -> bool {
        let mut expected = base.to_vec();
        self.fuse(base, &mut expected).is_some()
            && instruction_offsets(base, &self.caches)
                .all(|at| live.get(at..at + 2) == expected.get(at..at + 2))
    }
}

/// Pairs of adjacent instructions in `base` (byte offsets), the first
/// without cache entries: where `_PyCode_Quicken` looks for pairs to fuse.
fn adjacent_instructions<'a>(
    base: &'a [u8],
    caches: &'a [u8; 256],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    instruction_offsets(base, caches)
        .zip(instruction_offsets(base, caches).skip(1))
        .filter(|&(first, second)| second == first + 2)
}

/// The byte offset of the first instruction `first` directly followed by
/// an instruction `second` in `base` (base opcodes).
fn first_pair(base: &[u8], caches: &[u8; 256], first: u8, second: u8) -> Option<usize> {
    adjacent_instructions(base, caches)
        .find(|&(a, b)| base[a] == first && base[b] == second)
        .map(|(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LC: u8 = 100;
    const LF: u8 = 124;
    const SF: u8 = 125;
    const BIN: u8 = 122; // one cache entry in this made-up table
    const LINE: u8 = 254;

    fn table() -> OpcodeTable {
        let mut caches = [0; 256];
        caches[usize::from(BIN)] = 1;
        OpcodeTable {
            pairs: vec![
                (LC, LF, 84),
                (LF, LC, 86),
                (LF, LF, 88),
                (SF, LF, 154),
                (SF, SF, 158),
            ],
            caches,
            min_instrumented: 237,
        }
    }

    fn code(units: &[(u8, u8)]) -> Vec<u8> {
        units.iter().flat_map(|&(op, arg)| [op, arg]).collect()
    }

    #[test]
    fn fuses_adjacent_pairs_like_quickening() {
        let base = code(&[(LF, 0), (LF, 1), (LF, 2), (LC, 0), (SF, 3)]);
        let mut live = base.clone();
        let pass = table().fuse(&base, &mut live).expect("belongs together");
        assert_eq!(
            (pass.fused, pass.blocked, pass.sentinel),
            (3, 0, Some((0, 88)))
        );
        assert_eq!(live, code(&[(88, 0), (88, 1), (86, 2), (LC, 0), (SF, 3)]));
        // A second pass finds the work done.
        let again = table().fuse(&base, &mut live).expect("belongs together");
        assert_eq!(
            (again.fused, again.blocked, again.sentinel),
            (0, 0, Some((0, 88)))
        );
    }

    #[test]
    fn leaves_pairs_with_an_instrumented_half() {
        let base = code(&[(SF, 0), (LF, 1), (LF, 2), (LC, 3)]);
        // The second instruction starts a line that has not run yet.
        let mut live = code(&[(SF, 0), (LINE, 1), (LF, 2), (LC, 3)]);
        let pass = table().fuse(&base, &mut live).expect("belongs together");
        assert_eq!(
            (pass.fused, pass.blocked, pass.sentinel),
            (1, 2, Some((4, 86)))
        );
        assert_eq!(live, code(&[(SF, 0), (LINE, 1), (86, 2), (LC, 3)]));
        // Once the line ran and CPython put the instruction back, all fuse.
        live[2] = LF;
        let pass = table().fuse(&base, &mut live).expect("belongs together");
        assert_eq!(
            (pass.fused, pass.blocked, pass.sentinel),
            (2, 0, Some((0, 154)))
        );
        assert_eq!(live, code(&[(154, 0), (88, 1), (86, 2), (LC, 3)]));
    }

    #[test]
    fn finds_the_first_pair_of_a_kind() {
        let caches = table().caches;
        // The cache entry after BIN looks like LOAD_FAST: not an instruction.
        let base = code(&[(LF, 0), (BIN, 0), (LF, 0), (LF, 1), (LF, 2)]);
        assert_eq!(first_pair(&base, &caches, LF, LF), Some(6));
        assert_eq!(first_pair(&base, &caches, BIN, LF), None);
        assert_eq!(first_pair(&base, &caches, SF, LF), None);
    }

    #[test]
    fn cache_entries_are_not_instructions() {
        // The cache entry after BIN holds the bytes of LOAD_FAST LOAD_FAST
        // by chance; it must not be read as an instruction.
        let base = code(&[(BIN, 0), (0, 0), (LF, 1)]);
        let mut live = code(&[(BIN, 0), (LF, LF), (LF, 1)]);
        let pass = table().fuse(&base, &mut live).expect("belongs together");
        assert_eq!(pass, Pass::default());
        assert_eq!(live, code(&[(BIN, 0), (LF, LF), (LF, 1)]));
    }

    #[test]
    fn refuses_bytecode_that_does_not_belong_to_its_base() {
        let base = code(&[(LF, 0), (LF, 1)]);
        // Another argument: not this code's bytecode.
        assert_eq!(table().fuse(&base, &mut code(&[(LF, 0), (LF, 7)])), None);
        // An unknown opcode where a plain or fused one should be.
        assert_eq!(table().fuse(&base, &mut code(&[(3, 0), (LF, 1)])), None);
        // Another length.
        assert_eq!(table().fuse(&base, &mut code(&[(LF, 0)])), None);
    }

    #[test]
    fn checks_fresh_code_against_expected_fusion() {
        let base = code(&[
            (LC, 0),
            (LF, 0),
            (LF, 1),
            (LC, 1),
            (SF, 2),
            (LF, 2),
            (SF, 3),
            (SF, 4),
        ]);
        let mut fused = base.clone();
        table().fuse(&base, &mut fused).expect("belongs together");
        assert!(table().matches_fresh_code(&base, &fused));
        // The interpreter fused nothing: the check fails.
        assert!(!table().matches_fresh_code(&base, &base));
    }
}
