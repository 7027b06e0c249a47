//! What the bytecode passes of `tidy` and `fusion` need to know about the
//! running interpreter's opcodes, read from its `opcode` module.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Opcode numbers and sizes of the running interpreter (3.12 or 3.13).
#[derive(Debug, Clone)]
pub(crate) struct Opcodes {
    /// Inline cache entries after each base opcode.
    pub caches: [u8; 256],
    /// Opcodes from here up are instrumented ones (`INSTRUMENTED_LINE`...).
    pub min_instrumented: u8,
    /// `INSTRUMENTED_LINE`: a line start with `LINE` events pending.
    pub instrumented_line: u8,
    /// `RESUME`, where a code object's traceable part starts.
    pub resume: u8,
    numbers: HashMap<String, u8>,
}

impl Opcodes {
    /// The running interpreter's opcodes; `None` if something is missing.
    pub(crate) fn from_interpreter(py: Python<'_>) -> PyResult<Option<Opcodes>> {
        let opcode = py.import("opcode")?;
        let opmap = opcode.getattr("opmap")?.cast_into::<PyDict>()?;
        let mut numbers = HashMap::new();
        for (name, value) in opmap.iter() {
            if let Ok(value) = value.extract::<u8>() {
                numbers.insert(name.extract::<String>()?, value);
            }
        }
        // A list by opcode on 3.12, a dict by name on 3.13.
        let entries = opcode.getattr("_inline_cache_entries")?;
        let caches = match entries.cast::<PyDict>() {
            Ok(by_name) => {
                let mut caches = [0u8; 256];
                for (name, count) in by_name.iter() {
                    let Some(&number) = numbers.get(&name.extract::<String>()?) else {
                        return Ok(None);
                    };
                    caches[usize::from(number)] = count.extract()?;
                }
                caches
            }
            Err(_) => {
                let Ok(caches) = <[u8; 256]>::try_from(entries.extract::<Vec<u8>>()?) else {
                    return Ok(None);
                };
                caches
            }
        };
        let min_instrumented = numbers
            .iter()
            .filter(|(name, _)| name.starts_with("INSTRUMENTED_"))
            .map(|(_, &value)| value)
            .min();
        let (Some(min_instrumented), Some(&instrumented_line), Some(&resume)) = (
            min_instrumented,
            numbers.get("INSTRUMENTED_LINE"),
            numbers.get("RESUME"),
        ) else {
            return Ok(None);
        };
        Ok(Some(Opcodes {
            caches,
            min_instrumented,
            instrumented_line,
            resume,
            numbers,
        }))
    }

    /// Every opcode's name and number.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = (&str, u8)> + '_ {
        self.numbers
            .iter()
            .map(|(name, &number)| (name.as_str(), number))
    }

    /// The number of the opcode called `name`.
    pub(crate) fn number(&self, name: &str) -> Option<u8> {
        self.numbers.get(name).copied()
    }
}

/// The byte offsets of the instructions in `base` (base opcodes, as in
/// `co_code`), past their inline cache entries.
pub(crate) fn instruction_offsets<'a>(
    base: &'a [u8],
    caches: &'a [u8; 256],
) -> impl Iterator<Item = usize> + 'a {
    let mut next = 0;
    std::iter::from_fn(move || {
        let at = next;
        let opcode = *base.get(at)?;
        next += 2 * (1 + usize::from(caches[usize::from(opcode)]));
        Some(at)
    })
}
