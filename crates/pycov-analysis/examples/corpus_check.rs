//! Compares `analyze` with coverage.py's own parser on a corpus.
//!
//! The corpus file comes from `tests/tools/analysis_corpus.py`: per source
//! file, its path, the lines of its code objects (`CODE`) and coverage.py's
//! statements and excluded lines (`STMT`, `EXCL`) or its error (`ERROR`).
//!
//! Usage: cargo run --release -p pycov-analysis --example corpus_check -- CORPUS

use std::process::ExitCode;

use pycov_analysis::analyze;
use pycov_analysis::source::{decode_source, normalize_bytes, Decoded};
use pycov_core::{ExcludeRules, LineNo, LineSet};

fn parse_lines(rest: &str) -> LineSet {
    rest.split_whitespace()
        .filter_map(|n| n.parse::<u32>().ok())
        .filter_map(LineNo::new)
        .collect()
}

fn show(set: &LineSet) -> String {
    set.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let Some(corpus) = std::env::args().nth(1) else {
        eprintln!("usage: corpus_check CORPUS");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&corpus) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {corpus}: {e}");
            return ExitCode::from(2);
        }
    };
    let rules = ExcludeRules::default();
    let (mut checked, mut failed, mut skipped) = (0, 0, 0);
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("FILE ") else {
            continue;
        };
        let code = parse_lines(
            lines
                .next()
                .and_then(|l| l.strip_prefix("CODE"))
                .unwrap_or(""),
        );
        let expected = lines.next().unwrap_or("");
        let (expected_stmts, expected_excl) = if let Some(rest) = expected.strip_prefix("STMT") {
            let excl = lines
                .next()
                .and_then(|l| l.strip_prefix("EXCL"))
                .unwrap_or("");
            (Some(parse_lines(rest)), parse_lines(excl))
        } else {
            (None, LineSet::new())
        };
        let Ok(bytes) = std::fs::read(path) else {
            skipped += 1;
            continue;
        };
        let source = match decode_source(&normalize_bytes(&bytes)) {
            Decoded::Text(text) => text,
            Decoded::Foreign(_) => {
                skipped += 1;
                continue;
            }
        };
        checked += 1;
        match (analyze(&source, &code, &rules), expected_stmts) {
            (Ok(got), Some(stmts)) => {
                if got.statements != stmts || got.excluded != expected_excl {
                    failed += 1;
                    println!("MISMATCH {path}");
                    let extra = got.statements.difference(&stmts);
                    let lacking = stmts.difference(&got.statements);
                    if !extra.is_empty() || !lacking.is_empty() {
                        println!(
                            "  statements: extra [{}] missing [{}]",
                            show(&extra),
                            show(&lacking)
                        );
                    }
                    let extra = got.excluded.difference(&expected_excl);
                    let lacking = expected_excl.difference(&got.excluded);
                    if !extra.is_empty() || !lacking.is_empty() {
                        println!(
                            "  excluded: extra [{}] missing [{}]",
                            show(&extra),
                            show(&lacking)
                        );
                    }
                }
            }
            (Err(e), Some(_)) => {
                failed += 1;
                println!("ERROR {path}: {e}");
            }
            (Ok(_), None) => {
                failed += 1;
                println!("NOERROR {path}: coverage.py could not parse it");
            }
            (Err(_), None) => {}
        }
    }
    println!("checked {checked}, mismatched {failed}, skipped {skipped}");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
