//! The standalone binary (`cargo install --path crates/pycov-cli`) combines
//! and reports pycov data, and other tools' LCOV, without Python.

use std::path::Path;
use std::process::Command;

use pycov_core::{datafile, parallel, CoverageData, DataMeta, FileCoverage, LineNo, LineSet};

fn lines(numbers: &[u32]) -> LineSet {
    numbers
        .iter()
        .map(|&n| LineNo::new(n).expect("line number"))
        .collect()
}

fn one_file(path: &Path, executed: &[u32]) -> CoverageData {
    let mut data = CoverageData::new(DataMeta {
        producer: "pycov test".to_owned(),
        python: "CPython 3.12.1".to_owned(),
    });
    data.insert(
        path.to_str().expect("UTF-8 path").to_owned(),
        FileCoverage {
            statements: lines(&[1, 2, 4, 5]),
            executed: lines(executed),
            line_count: 5,
            ..FileCoverage::default()
        },
    );
    data
}

fn pycov(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pycov"))
        .args(args)
        .current_dir(dir)
        .env_remove("PYCOV_FILE")
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_standalone_binary_combines_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical");
    let source = dir.join("mod.py");
    std::fs::write(&source, "a = 1\nb = 2\n\nc = 3\nd = 4\n").expect("source");
    let other = dir.join("other.py");
    std::fs::write(&other, "x = 1\ny = 2\n").expect("source");
    let base = dir.join(".pycov");
    for executed in [&[1, 2][..], &[4][..]] {
        datafile::write(
            &parallel::parallel_data_path(&base),
            &one_file(&source, executed),
        )
        .expect("data file");
    }
    std::fs::write(
        dir.join("other.lcov"),
        format!("SF:{}\nDA:1,1\nDA:2,0\nend_of_record\n", other.display()),
    )
    .expect("lcov");

    let (code, _, stderr) = pycov(&dir, &["combine", "-q", ".", "other.lcov"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert!(parallel::pending_parallel_files(&base)
        .expect("list")
        .is_empty());
    assert!(dir.join("other.lcov").exists());

    let (code, stdout, stderr) = pycov(&dir, &["report", "-m"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["mod.py", "4", "1", "75%", "5"]),
        "{stdout}"
    );
    assert!(
        rows.contains(&vec!["other.py", "2", "1", "50%", "2"]),
        "{stdout}"
    );

    let (code, stdout, _) = pycov(&dir, &["lcov", "-o", "-"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("DA:4,1"), "{stdout}");
    assert!(stdout.contains("DA:5,0"), "{stdout}");
}
