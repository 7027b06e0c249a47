//! The command line as clap parses it; nothing here is validated yet.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Line coverage for Python: coverage.py's answers at a fraction of its cost.
#[derive(Debug, Parser)]
#[command(name = "pycov", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// pycov's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Python program and record which lines run.
    Run(RunArgs),
    /// Show a coverage summary table in the terminal.
    Report(ReportArgs),
    /// Write a Cobertura XML report (GitLab, Codecov, Jenkins, Sonar, Azure).
    Xml(XmlArgs),
    /// Write an LCOV tracefile (genhtml, Coveralls, Codecov, diff-cover).
    Lcov(LcovArgs),
    /// Write a coverage.py-compatible JSON report.
    Json(JsonArgs),
    /// Merge data files: parallel runs, other machines.
    Combine(CombineArgs),
}

/// Options every command that reads or writes data takes.
#[derive(Debug, Args)]
pub struct DataFileArg {
    /// The data file [default: .pycov, or $PYCOV_FILE, or data_file in
    /// [tool.pycov]].
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
}

/// `pycov run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Measure only code under this directory, or in this importable package
    /// (repeatable, or comma-separated). Never-imported files under it are
    /// reported at 0%. Default: the current directory.
    #[arg(long, value_name = "DIR|PACKAGE", value_delimiter = ',')]
    pub source: Vec<String>,

    /// Measure only files matching these globs (ignored with --source).
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub include: Vec<String>,

    /// Do not measure files matching these globs.
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub omit: Vec<String>,

    #[command(flatten)]
    pub data_file: DataFileArg,

    /// Run a library module as a script, like `python -m`.
    #[arg(short = 'm', long = "module")]
    pub module: bool,

    /// Write the data to a file of its own, `<data file>.<host>.<pid>.<random>`,
    /// for `pycov combine` (and the reports) to merge.
    #[arg(short = 'p', long = "parallel-mode")]
    pub parallel_mode: bool,

    /// Store paths relative to the current directory in the data file, so
    /// it reports and combines in another checkout or container unchanged.
    #[arg(long)]
    pub relative_files: bool,

    /// Measure the Python subprocesses the program starts (pytest-xdist
    /// workers, `subprocess`, `multiprocessing`) into files of their own,
    /// merged into this run's data at its end.
    #[arg(long)]
    pub subprocesses: bool,

    /// The script (or, with -m, the module) followed by its arguments.
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_parser = clap::value_parser!(OsString)
    )]
    pub program: Vec<OsString>,
}

/// Options shared by the report commands.
#[derive(Debug, Args)]
pub struct ReportCommon {
    /// The data file to report, with its parallel files (`FILE.*`)
    /// [default: .pycov, or $PYCOV_FILE, or data_file in [tool.pycov]].
    /// Repeat to report exactly the files named, as one.
    #[arg(long = "data-file", value_name = "FILE")]
    pub data_files: Vec<PathBuf>,

    /// Report only files matching these globs.
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub include: Vec<String>,

    /// Leave out files matching these globs.
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub omit: Vec<String>,

    /// Digits after the decimal point in percentages [default: 0].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=20))]
    pub precision: Option<u8>,

    /// Exit with status 2 if the total coverage is below this percentage.
    #[arg(long, value_name = "MIN")]
    pub fail_under: Option<f64>,
}

/// `pycov report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: ReportCommon,

    /// Show the line numbers of statements that did not run.
    #[arg(short = 'm', long)]
    pub show_missing: bool,

    /// Leave out files that are fully covered.
    #[arg(long)]
    pub skip_covered: bool,

    /// Leave out files without statements.
    #[arg(long)]
    pub skip_empty: bool,

    /// Order rows by name, stmts, miss or cover; a leading "-" reverses.
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    pub sort: Option<String>,

    /// The whole table, a Markdown table, or only the total percentage.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "markdown", "total"])]
    pub format: Option<String>,
}

/// `pycov xml`.
#[derive(Debug, Args)]
pub struct XmlArgs {
    #[command(flatten)]
    pub common: ReportCommon,

    /// Where to write the report ("-" for standard output).
    #[arg(short = 'o', value_name = "FILE", default_value = "coverage.xml")]
    pub output: PathBuf,

    /// Name files and sources relative to the project (the current
    /// directory, or --source-root), not absolutely: what GitLab and
    /// SonarQube need when tests ran in another checkout or a container.
    #[arg(long)]
    pub relative_files: bool,

    /// The directory written in <sources> and that file names are relative
    /// to [default: the source directories of [tool.pycov], else the
    /// current directory].
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,

    /// Leave out files without statements.
    #[arg(long)]
    pub skip_empty: bool,
}

/// `pycov lcov`.
#[derive(Debug, Args)]
pub struct LcovArgs {
    #[command(flatten)]
    pub common: ReportCommon,

    /// Where to write the report ("-" for standard output).
    #[arg(short = 'o', value_name = "FILE", default_value = "coverage.lcov")]
    pub output: PathBuf,

    /// Leave out files without statements.
    #[arg(long)]
    pub skip_empty: bool,
}

/// `pycov json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    #[command(flatten)]
    pub common: ReportCommon,

    /// Where to write the report ("-" for standard output).
    #[arg(short = 'o', value_name = "FILE", default_value = "coverage.json")]
    pub output: PathBuf,

    /// Indent the JSON for people.
    #[arg(long)]
    pub pretty_print: bool,
}

/// `pycov combine`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    /// Data files, or directories whose `<data file>.*` files to merge
    /// [default: the parallel files beside the data file].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Add to the existing data file instead of replacing it.
    #[arg(short = 'a', long)]
    pub append: bool,

    /// Keep the merged input files.
    #[arg(long)]
    pub keep: bool,

    /// Do not list the merged files.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Store paths relative to the current directory in the combined file.
    #[arg(long)]
    pub relative_files: bool,

    #[command(flatten)]
    pub data_file: DataFileArg,
}
