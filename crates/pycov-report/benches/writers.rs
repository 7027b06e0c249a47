//! How long the writers take for a big project: 5,000 files with 400
//! statements each (2 million in all), 20 functions and 2 classes per file,
//! 70 % of the statements run. `cargo bench -p pycov-report`;
//! `tools/bench_reports.py` times coverage.py on the same shape of data.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pycov_core::{CodeRegion, CoverageData, FileCoverage, LineNo, LineRanges, LineSet, RegionKind};
use pycov_report::json::{write_json, JsonOptions};
use pycov_report::lcov::write_lcov;
use pycov_report::report_files;
use pycov_report::text::{write_text, TextOptions};
use pycov_report::xml::{write_xml, XmlOptions};

const FILES: u32 = 5_000;
const STATEMENTS: u32 = 400;
const FUNCTIONS: u32 = 20;

fn line(n: u32) -> LineNo {
    LineNo::new(n).unwrap_or(LineNo::FIRST)
}

/// One file: statements on the odd lines, a function every 40 lines,
/// the first half of the file in two classes.
fn file(index: u32) -> FileCoverage {
    let statements: LineSet = (0..STATEMENTS).map(|i| line(2 * i + 1)).collect();
    let executed: LineSet = statements
        .iter()
        .filter(|l| (l.get() + index) % 10 < 7)
        .collect();
    let lines_per_function = 2 * STATEMENTS / FUNCTIONS;
    let mut regions: Vec<CodeRegion> = (0..FUNCTIONS)
        .map(|f| {
            let start = f * lines_per_function + 1;
            CodeRegion {
                kind: RegionKind::Function,
                name: format!("function_{f}"),
                start: line(start),
                lines: LineRanges::from_pairs(vec![(
                    line(start),
                    line(start + lines_per_function - 1),
                )])
                .unwrap_or_default(),
            }
        })
        .collect();
    for c in 0..2 {
        let start = c * STATEMENTS / 2 + 1;
        regions.push(CodeRegion {
            kind: RegionKind::Class,
            name: format!("Class{c}"),
            start: line(start),
            lines: LineRanges::from_pairs(vec![(line(start), line(start + STATEMENTS / 2 - 1))])
                .unwrap_or_default(),
        });
    }
    FileCoverage {
        statements,
        executed,
        line_count: 2 * STATEMENTS,
        regions,
        ..FileCoverage::default()
    }
}

fn project() -> CoverageData {
    let mut data = CoverageData::default();
    for i in 0..FILES {
        data.insert(format!("/proj/pkg{}/module_{i}.py", i / 100), file(i));
    }
    data
}

fn writers(c: &mut Criterion) {
    let data = project();
    let files = report_files(&data, "/proj");
    assert_eq!(
        files.iter().map(|f| f.counts.statements).sum::<usize>(),
        2_000_000
    );
    let mut group = c.benchmark_group("5000 files, 2M statements");
    group.sample_size(10);
    group.bench_function("xml", |b| {
        let options = XmlOptions {
            base_dir: "/proj".into(),
            ..XmlOptions::default()
        };
        b.iter(|| {
            let mut out = Vec::new();
            write_xml(black_box(&files), &options, &mut out).map(|_| out.len())
        })
    });
    group.bench_function("lcov", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            write_lcov(black_box(&files), &mut out).map(|_| out.len())
        })
    });
    group.bench_function("json", |b| {
        let options = JsonOptions::default();
        b.iter(|| {
            let mut out = Vec::new();
            write_json(black_box(&files), &options, &mut out).map(|_| out.len())
        })
    });
    group.bench_function("text -m", |b| {
        let options = TextOptions {
            show_missing: true,
            ..TextOptions::default()
        };
        b.iter(|| {
            let mut out = Vec::new();
            write_text(black_box(&files), &options, &mut out).map(|_| out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, writers);
criterion_main!(benches);
