//! pycov's command line: parses arguments, merges them with `[tool.pycov]`,
//! validates everything into plain options and calls the libraries.
//!
//! `pycov run` needs an interpreter; the Python package passes a
//! [`ProgramRunner`]. The standalone binary has none and hands `run` over to
//! `python -m pycov`.
//!
//! ```no_run
//! let outcome = pycov_cli::main(vec!["pycov".into(), "report".into(), "-m".into()], None);
//! assert_eq!(outcome, pycov_cli::Outcome::Exit(0));
//! ```

mod args;
mod combine;
mod config;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Parser;

use pycov_core::{
    datafile, CoverageData, ExcludeRules, FileCoverage, FilePatterns, LineSet, RunOptions,
    RunTarget, Selection, SourceHash,
};
use pycov_report::json::{write_json, JsonOptions};
use pycov_report::lcov::write_lcov;
use pycov_report::numbers::{fail_under, percent};
use pycov_report::text::{write_text, SortOrder, TextFormat, TextOptions};
use pycov_report::xml::{write_xml, XmlOptions};
use pycov_report::{report_files, ReportError, ReportFile};

use args::{Cli, Command, JsonArgs, LcovArgs, ReportArgs, ReportCommon, RunArgs, XmlArgs};
pub use config::Config;

/// Exit status for pycov's own errors (coverage.py's `ERR`).
pub const EXIT_ERROR: i32 = 1;
/// Exit status when the total is below `--fail-under`.
pub const EXIT_FAIL_UNDER: i32 = 2;

/// How a measured program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramStatus {
    /// With this exit status.
    Exit(i32),
    /// By an uncaught `KeyboardInterrupt`.
    Interrupted,
}

/// What a runner reports back.
#[derive(Debug)]
pub struct RunReport {
    /// How the program ended.
    pub status: ProgramStatus,
    /// Things the user should know (files that could not be analysed...).
    pub warnings: Vec<String>,
    /// The data file could not be written.
    pub save_error: Option<String>,
}

/// A failure to run the program at all.
#[derive(Debug)]
pub struct RunFailure {
    /// The message, without the `pycov:` prefix.
    pub message: String,
    /// The exit status Python would use for the same problem.
    pub exit_code: i32,
}

/// What pycov needs a Python interpreter for (the Python package has one;
/// the standalone binary does not).
pub trait ProgramRunner {
    /// Runs the program and saves the data.
    fn run(&self, options: &RunOptions) -> std::result::Result<RunReport, RunFailure>;

    /// Analyses a source file as `pycov run` does (statements, exclusions,
    /// regions, hash), with `raw_executed`, the lines another tracer saw,
    /// turned into executed statements: for coverage.py's data, which
    /// stores neither statements nor first lines of multi-line statements.
    fn analyze(
        &self,
        path: &Path,
        exclude: &ExcludeRules,
        raw_executed: &LineSet,
    ) -> std::result::Result<FileCoverage, String>;
}

/// What the process should do at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit with this status.
    Exit(i32),
    /// End by SIGINT (the program was interrupted).
    Interrupted,
}

/// Runs pycov with `args` (including the program name).
pub fn main(args: Vec<OsString>, runner: Option<&dyn ProgramRunner>) -> Outcome {
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return Outcome::Exit(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Run(run) => match runner {
            Some(runner) => run_command(run, runner),
            None => delegate_to_python(&args),
        },
        Command::Report(report) => report_command(report, runner),
        Command::Xml(xml) => xml_command(xml, runner),
        Command::Lcov(lcov) => lcov_command(lcov, runner),
        Command::Json(json) => json_command(json, runner),
        Command::Combine(combine) => combine::combine_command(combine, runner),
    };
    match result {
        Ok(outcome) => outcome,
        Err(err) => {
            if is_broken_pipe(&err) {
                return Outcome::Exit(0);
            }
            eprintln!("pycov: {err:#}");
            Outcome::Exit(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<ReportError>().is_some_and(
                |e| matches!(e, ReportError::Io(io) if io.kind() == io::ErrorKind::BrokenPipe),
            )
    })
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

fn load_config(cwd: &Path) -> Result<Config> {
    let config = Config::discover(cwd)?;
    for key in &config.unknown {
        eprintln!("pycov: warning: unknown option [tool.pycov] {key} in pyproject.toml");
    }
    Ok(config)
}

/// `--data-file`, else `$PYCOV_FILE`, else `data_file` in the config, else
/// `.pycov`; relative to `cwd`.
fn data_file_path(flag: Option<&PathBuf>, config: &Config, cwd: &Path) -> PathBuf {
    let chosen = flag
        .cloned()
        .or_else(|| {
            std::env::var_os("PYCOV_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| config.data_file.clone())
        .unwrap_or_else(|| PathBuf::from(datafile::DEFAULT_DATA_FILE));
    cwd.join(chosen)
}

fn run_command(args: RunArgs, runner: &dyn ProgramRunner) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let options = run_options(args, &config, &cwd)?;
    let report = match runner.run(&options) {
        Ok(report) => report,
        Err(failure) => {
            eprintln!("pycov: {}", failure.message);
            return Ok(Outcome::Exit(failure.exit_code));
        }
    };
    for warning in &report.warnings {
        eprintln!("pycov: warning: {warning}");
    }
    Ok(match (report.status, report.save_error) {
        (ProgramStatus::Interrupted, Some(error)) => {
            eprintln!("pycov: {error}");
            Outcome::Interrupted
        }
        (ProgramStatus::Interrupted, None) => Outcome::Interrupted,
        (ProgramStatus::Exit(code), Some(error)) => {
            eprintln!("pycov: {error}");
            Outcome::Exit(if code == 0 { EXIT_ERROR } else { code })
        }
        (ProgramStatus::Exit(code), None) => Outcome::Exit(code),
    })
}

/// Validates `pycov run` flags and config into [`RunOptions`].
fn run_options(args: RunArgs, config: &Config, cwd: &Path) -> Result<RunOptions> {
    let mut program = args.program.into_iter();
    let first = program.next().ok_or_else(|| anyhow!("nothing to run"))?;
    let target = if args.module {
        let name = first
            .into_string()
            .map_err(|name| anyhow!("module name {name:?} is not valid UTF-8"))?;
        RunTarget::Module(name)
    } else {
        RunTarget::Script(PathBuf::from(first))
    };
    let sources = if args.source.is_empty() {
        config.source.clone()
    } else {
        args.source
    };
    let mut selection = Selection::default();
    for source in sources {
        let dir = cwd.join(&source);
        if dir.is_dir() {
            let canonical = std::fs::canonicalize(&dir)
                .with_context(|| format!("source directory {}", dir.display()))?;
            if canonical.parent().is_none() {
                anyhow::bail!("source directory can't be a file system root: {source}");
            }
            selection.source_dirs.push(canonical);
        } else if is_module_name(&source) {
            selection.source_packages.push(source);
        } else {
            anyhow::bail!("--source {source}: neither a directory nor an importable module name");
        }
    }
    let canonical_cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let include = if args.include.is_empty() {
        &config.include
    } else {
        &args.include
    };
    let omit = if args.omit.is_empty() {
        &config.omit
    } else {
        &args.omit
    };
    selection.include = FilePatterns::new(include, &canonical_cwd)?;
    selection.omit = FilePatterns::new(omit, &canonical_cwd)?;
    let exclude = exclude_rules(config)?;
    Ok(RunOptions {
        target,
        args: program.collect(),
        data_file: data_file_path(args.data_file.data_file.as_ref(), config, cwd),
        parallel: args.parallel_mode || config.parallel == Some(true),
        subprocesses: args.subprocesses || config.subprocesses == Some(true),
        relative_files: args.relative_files || config.relative_files == Some(true),
        selection,
        exclude,
    })
}

/// The exclusion regexes of `[tool.pycov]`: `exclude_lines` (or the
/// defaults) and `exclude_also`.
fn exclude_rules(config: &Config) -> Result<ExcludeRules> {
    let mut exclude: Vec<String> = match &config.exclude_lines {
        Some(lines) => lines.clone(),
        None => pycov_core::DEFAULT_EXCLUDE
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    exclude.extend(config.exclude_also.iter().cloned());
    ExcludeRules::new(&exclude).context("pyproject.toml [tool.pycov]")
}

fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// The data and the files to report, filtered by `--include`/`--omit`.
struct Loaded {
    data: CoverageData,
    /// The canonical current directory: report names are relative to it.
    cwd: String,
    include: FilePatterns,
    omit: FilePatterns,
}

impl Loaded {
    fn files(&self) -> Vec<ReportFile<'_>> {
        report_files(&self.data, &self.cwd)
            .into_iter()
            .filter(|f| self.include.is_empty() || self.include.is_match(f.path))
            .filter(|f| !self.omit.is_match(f.path))
            .collect()
    }
}

/// Reads the data file and the parallel files beside it (or, when
/// `--data-file` is repeated, exactly the files named), remaps their paths
/// by `[tool.pycov.paths]` and unions them.
fn load(
    common: &ReportCommon,
    config: &Config,
    cwd: &Path,
    runner: Option<&dyn ProgramRunner>,
) -> Result<Loaded> {
    let paths: Vec<PathBuf> = if common.data_files.len() <= 1 {
        let main = data_file_path(common.data_files.first(), config, cwd);
        let mut paths = Vec::new();
        if main.exists() {
            paths.push(main.clone());
        }
        paths.extend(combine::pending_parallel_files(&main)?);
        if paths.is_empty() {
            anyhow::bail!(
                "no data file {} (measure with `pycov run` first)",
                main.display()
            );
        }
        paths
    } else {
        common
            .data_files
            .iter()
            .map(|flag| data_file_path(Some(flag), config, cwd))
            .collect()
    };
    let aliases = combine::path_aliases(config, cwd)?;
    let analysis = combine::SourceAnalysis::new(runner, config)?;
    let mut data = CoverageData::default();
    for (path, _) in &combine::natives_first(paths) {
        if !path.exists() {
            anyhow::bail!(
                "no data file {} (measure with `pycov run` first)",
                path.display()
            );
        }
        if let Some(conflict) =
            combine::merge_input(&mut data, path, &aliases, cwd, analysis.as_ref())?.first()
        {
            anyhow::bail!(
                "{} measured a different version of {} than the data files before it; report them separately",
                path.display(),
                conflict.path
            );
        }
    }
    let canonical_cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let loaded = Loaded {
        data,
        cwd: canonical_cwd.to_string_lossy().into_owned(),
        include: FilePatterns::new(&common.include, &canonical_cwd)?,
        omit: FilePatterns::new(&common.omit, &canonical_cwd)?,
    };
    warn_stale(&loaded.files());
    Ok(loaded)
}

/// Names the reported files whose source changed after it was measured:
/// their line numbers may no longer point at the same code. Files without
/// a hash (from LCOV) or not on this machine are not checked.
fn warn_stale(files: &[ReportFile<'_>]) {
    const SHOWN: usize = 5;
    let stale: Vec<&str> = files
        .iter()
        .filter(|f| f.coverage.source_hash != SourceHash::default())
        .filter(|f| {
            std::fs::read(f.path)
                .is_ok_and(|bytes| SourceHash::of(&bytes) != f.coverage.source_hash)
        })
        .map(|f| f.name.as_str())
        .collect();
    for name in stale.iter().take(SHOWN) {
        eprintln!("pycov: warning: {name} changed after it was measured; its lines may be wrong");
    }
    if stale.len() > SHOWN {
        eprintln!(
            "pycov: warning: and {} more files changed after they were measured",
            stale.len() - SHOWN
        );
    }
}

/// The total percentage the file reports check `--fail-under` against:
/// coverage.py's `n_statements and pc_covered`, 0 without statements.
fn total_or_zero(totals: &pycov_core::Counts) -> f64 {
    if totals.statements == 0 {
        0.0
    } else {
        percent(totals)
    }
}

fn precision(common: &ReportCommon, config: &Config) -> usize {
    common
        .precision
        .map(usize::from)
        .or(config.precision)
        .unwrap_or(0)
}

/// Writes a finished report to `output` ("-": standard output) atomically,
/// and says so as coverage.py does.
fn write_report(output: &Path, cwd: &Path, kind: &str, report: &[u8]) -> Result<()> {
    if output == Path::new("-") {
        let mut out = io::stdout().lock();
        out.write_all(report)?;
        out.flush()?;
    } else {
        let path = cwd.join(output);
        datafile::write_atomically(&path, report)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("Wrote {kind} report to {}", output.display());
    }
    Ok(())
}

/// Whether standard output should get colours: a terminal, and neither
/// `NO_COLOR` (https://no-color.org) nor `TERM=dumb`.
fn stdout_wants_colour() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Applies `--fail-under` (flag, else config) to a total percentage.
fn check_fail_under(
    total: f64,
    common: &ReportCommon,
    config: &Config,
    precision: usize,
) -> Result<Outcome> {
    let Some(minimum) = common.fail_under.or(config.fail_under) else {
        return Ok(Outcome::Exit(0));
    };
    if !(0.0..=100.0).contains(&minimum) {
        anyhow::bail!("--fail-under must be between 0 and 100, not {minimum}");
    }
    match fail_under(total, minimum, precision) {
        Some(message) => {
            println!("Coverage failure: {message}");
            Ok(Outcome::Exit(EXIT_FAIL_UNDER))
        }
        None => Ok(Outcome::Exit(0)),
    }
}

fn report_command(args: ReportArgs, runner: Option<&dyn ProgramRunner>) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let format = match &args.format {
        Some(format) => format.parse::<TextFormat>().map_err(|e| anyhow!(e))?,
        None => TextFormat::default(),
    };
    // As coverage.py: an empty sort means by name, and only tables sort.
    let sort = match args.sort.as_ref().or(config.sort.as_ref()) {
        Some(sort) if !sort.is_empty() && format != TextFormat::Total => {
            sort.parse::<SortOrder>().map_err(|e| anyhow!(e))?
        }
        _ => SortOrder::default(),
    };
    let loaded = load(&args.common, &config, &cwd, runner)?;
    let options = TextOptions {
        show_missing: args.show_missing || config.show_missing.unwrap_or(false),
        skip_covered: args.skip_covered || config.skip_covered.unwrap_or(false),
        skip_empty: args.skip_empty || config.skip_empty.unwrap_or(false),
        precision: precision(&args.common, &config),
        sort,
        format,
        colour: stdout_wants_colour(),
        fail_under: args.common.fail_under.or(config.fail_under),
    };
    let mut out = io::stdout().lock();
    let totals = write_text(&loaded.files(), &options, &mut out)?;
    out.flush()?;
    check_fail_under(percent(&totals), &args.common, &config, options.precision)
}

fn xml_command(args: XmlArgs, runner: Option<&dyn ProgramRunner>) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let loaded = load(&args.common, &config, &cwd, runner)?;
    let source_roots = match &args.source_root {
        Some(root) => {
            let dir = cwd.join(root);
            let canonical = std::fs::canonicalize(&dir)
                .with_context(|| format!("--source-root {}", root.display()))?;
            if !canonical.is_dir() {
                anyhow::bail!("--source-root {}: not a directory", root.display());
            }
            vec![canonical.to_string_lossy().into_owned()]
        }
        None => config
            .source
            .iter()
            .map(|source| cwd.join(source))
            .filter(|dir| dir.is_dir())
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .map(|dir| dir.to_string_lossy().into_owned())
            .collect(),
    };
    let options = XmlOptions {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        source_roots,
        base_dir: loaded.cwd.clone(),
        relative_sources: args.relative_files || config.relative_files.unwrap_or(false),
        package_depth: config.xml_package_depth.unwrap_or(99),
        skip_empty: args.skip_empty || config.skip_empty.unwrap_or(false),
    };
    let mut report = Vec::new();
    let totals = write_xml(&loaded.files(), &options, &mut report)?;
    write_report(&args.output, &cwd, "XML", &report)?;
    check_fail_under(
        total_or_zero(&totals),
        &args.common,
        &config,
        precision(&args.common, &config),
    )
}

fn lcov_command(args: LcovArgs, runner: Option<&dyn ProgramRunner>) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let loaded = load(&args.common, &config, &cwd, runner)?;
    let mut files = loaded.files();
    if args.skip_empty || config.skip_empty.unwrap_or(false) {
        files.retain(|f| f.counts.statements > 0);
    }
    let mut report = Vec::new();
    let totals = write_lcov(&files, &mut report)?;
    write_report(&args.output, &cwd, "LCOV", &report)?;
    check_fail_under(
        total_or_zero(&totals),
        &args.common,
        &config,
        precision(&args.common, &config),
    )
}

fn json_command(args: JsonArgs, runner: Option<&dyn ProgramRunner>) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let loaded = load(&args.common, &config, &cwd, runner)?;
    let precision = precision(&args.common, &config);
    let options = JsonOptions {
        pretty: args.pretty_print,
        precision,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        timestamp: chrono::Local::now()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string(),
    };
    let mut report = Vec::new();
    let totals = write_json(&loaded.files(), &options, &mut report)?;
    write_report(&args.output, &cwd, "JSON", &report)?;
    check_fail_under(total_or_zero(&totals), &args.common, &config, precision)
}

/// The standalone binary cannot run Python code itself: it replaces itself
/// with `python -m pycov` and the same arguments.
fn delegate_to_python(args: &[OsString]) -> Result<Outcome> {
    let python = std::env::var_os("PYCOV_PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("python3"));
    let mut command = std::process::Command::new(&python);
    command.arg("-m").arg("pycov").args(args.iter().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = command.exec();
        Err(anyhow!(
            "cannot start {} to run the program ({err}); set PYCOV_PYTHON to an interpreter with pycov installed",
            python.to_string_lossy()
        ))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().with_context(|| {
            format!(
                "cannot start {} to run the program; set PYCOV_PYTHON to an interpreter with pycov installed",
                python.to_string_lossy()
            )
        })?;
        Ok(Outcome::Exit(status.code().unwrap_or(EXIT_ERROR)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["pycov", "run"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).expect("parses").command {
            Command::Run(run) => run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn program_arguments_are_passed_through() {
        let args = run_args(&["--omit", "x/*", "script.py", "--omit", "-v", "value"]);
        let options = run_options(args, &Config::default(), Path::new("/tmp")).expect("valid");
        assert_eq!(options.target, RunTarget::Script("script.py".into()));
        assert_eq!(options.args, vec!["--omit", "-v", "value"]);
        assert!(matches!(
            Cli::try_parse_from(["pycov", "report", "--precision", "21"]),
            Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation
        ));
        assert_eq!(options.selection.omit.patterns(), ["x/*"]);
        assert!(options.data_file.ends_with(".pycov"));
    }

    #[test]
    fn module_mode_and_sources() {
        let args = run_args(&["--source", "pkg_a,pkg.b", "-m", "pytest", "-q"]);
        let options = run_options(args, &Config::default(), Path::new("/tmp")).expect("valid");
        assert_eq!(options.target, RunTarget::Module("pytest".into()));
        assert_eq!(options.args, vec!["-q"]);
        assert_eq!(options.selection.source_packages, vec!["pkg_a", "pkg.b"]);
    }

    #[test]
    fn flags_override_config() {
        let config = Config {
            omit: vec!["cfg/*".into()],
            data_file: Some("cfg.data".into()),
            exclude_also: vec!["never".into()],
            ..Config::default()
        };
        let options = run_options(run_args(&["a.py"]), &config, Path::new("/tmp")).expect("valid");
        assert_eq!(options.selection.omit.patterns(), ["cfg/*"]);
        assert_eq!(
            options.exclude.patterns().last().map(String::as_str),
            Some("never")
        );
        let options = run_options(
            run_args(&["--omit", "flag/*", "--data-file", "f.data", "a.py"]),
            &config,
            Path::new("/tmp"),
        )
        .expect("valid");
        assert_eq!(options.selection.omit.patterns(), ["flag/*"]);
        assert_eq!(options.data_file, PathBuf::from("/tmp/f.data"));
    }

    #[test]
    fn bad_sources_and_patterns_are_errors() {
        let err = run_options(
            run_args(&["--source", "no such/dir", "a.py"]),
            &Config::default(),
            Path::new("/tmp"),
        )
        .expect_err("bad source");
        assert!(err.to_string().contains("no such/dir"), "{err}");
        let err = run_options(
            run_args(&["--omit", "a***", "a.py"]),
            &Config::default(),
            Path::new("/tmp"),
        )
        .expect_err("bad glob");
        assert!(err.to_string().contains("a***"), "{err}");
        let config = Config {
            exclude_also: vec!["(".into()],
            ..Config::default()
        };
        let err =
            run_options(run_args(&["a.py"]), &config, Path::new("/tmp")).expect_err("bad regex");
        assert!(
            format!("{err:#}").contains("invalid exclusion regex"),
            "{err:#}"
        );
    }

    #[test]
    fn module_names() {
        assert!(is_module_name("pkg.sub_2"));
        assert!(!is_module_name("pkg/sub"));
        assert!(!is_module_name("2pkg"));
        assert!(!is_module_name("pkg..sub"));
    }
}
