//! Merging data files: parallel-mode names, finding the files to merge,
//! remapping their paths, and `pycov combine`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pycov_report::read_cobertura::{looks_like_xml, read_cobertura};
use pycov_report::read_coveragepy::read_coveragepy;
use pycov_report::read_lcov::{looks_like_lcov, read_lcov};

use pycov_core::datafile::{self, DataFileError};
use pycov_core::parallel;
use pycov_core::paths::{is_relative_path, relative_to_root, resolve_from_root};
use pycov_core::{CoverageData, ExcludeRules, MergeConflict, PathAliases};

use crate::args::CombineArgs;
use crate::{
    current_dir, data_file_path, exclude_rules, load_config, Config, Outcome, ProgramRunner,
    EXIT_ERROR,
};

/// The parallel files next to the data file, which reports include.
pub(crate) fn pending_parallel_files(data_file: &Path) -> Result<Vec<PathBuf>> {
    parallel::pending_parallel_files(data_file)
        .with_context(|| format!("cannot list the parallel files of {}", data_file.display()))
}

fn parallel_files(data_file: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    parallel::parallel_files(data_file, dir)
        .with_context(|| format!("cannot list {}", dir.display()))
}

/// `[tool.pycov.paths]` as rules.
pub(crate) fn path_aliases(config: &Config, cwd: &Path) -> Result<PathAliases> {
    let origin = config
        .origin
        .as_ref()
        .map_or_else(|| "pyproject.toml".to_owned(), |p| p.display().to_string());
    PathAliases::from_config(config.paths.iter().map(|(_, paths)| paths.as_slice()), cwd)
        .with_context(|| format!("{origin}: [tool.pycov.paths]"))
}

/// Makes the paths of `data` absolute (relative ones, from data written
/// with `relative_files`, are taken from `cwd`) and renames them through
/// `aliases` (a mapped path that exists is made canonical, as the runner
/// records paths); files that land on the same path are merged. Returns the
/// files that could not be, because two spellings carried different
/// statements.
pub(crate) fn remap(
    data: CoverageData,
    aliases: &PathAliases,
    cwd: &Path,
) -> (CoverageData, Vec<MergeConflict>) {
    if aliases.is_empty() && !data.files().any(|(path, _)| is_relative_path(path)) {
        return (data, Vec::new());
    }
    let root = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    data.rename_files(|path| {
        let path = resolve_from_root(path, &root);
        aliases
            .map(&path, cwd, |p| Path::new(p).exists())
            .map(|mapped| {
                std::fs::canonicalize(&mapped)
                    .ok()
                    .and_then(|c| c.to_str().map(str::to_owned))
                    .unwrap_or(mapped)
            })
            .unwrap_or(path)
    })
}

/// coverage.py's data read through the interpreter's analysis of the
/// sources, as `pycov run` does: statements for files only it names, and
/// its raw lines (continuation lines of multi-line statements) turned into
/// the statements they belong to.
pub(crate) struct SourceAnalysis<'a> {
    runner: &'a dyn ProgramRunner,
    exclude: ExcludeRules,
}

impl<'a> SourceAnalysis<'a> {
    /// Available when pycov runs from its Python package.
    pub(crate) fn new(
        runner: Option<&'a dyn ProgramRunner>,
        config: &Config,
    ) -> Result<Option<SourceAnalysis<'a>>> {
        let Some(runner) = runner else {
            return Ok(None);
        };
        Ok(Some(SourceAnalysis {
            runner,
            exclude: exclude_rules(config)?,
        }))
    }

    /// Turns the raw lines of coverage.py's data into executed statements
    /// by analysing each file whose source is here. A file `merged` does not
    /// know is added to it whole; the rest is returned for
    /// [`CoverageData::merge_executed`] (a file whose analysis disagrees with
    /// `merged`'s statements, another Python's or an older source, keeps
    /// its raw lines).
    fn translate(
        &self,
        merged: &mut CoverageData,
        theirs: CoverageData,
        input: &Path,
    ) -> CoverageData {
        let mut rest = CoverageData::new(theirs.meta.clone());
        for (path, raw) in theirs.into_files() {
            if !Path::new(&path).is_file() {
                rest.insert(path, raw);
                continue;
            }
            match self
                .runner
                .analyze(Path::new(&path), &self.exclude, &raw.executed)
            {
                Ok(file) => match merged.get(&path) {
                    None => merged.insert(path, file),
                    Some(known) if known.statements == file.statements => rest.insert(path, file),
                    Some(_) => rest.insert(path, raw),
                },
                Err(_) if merged.get(&path).is_some() => rest.insert(path, raw),
                Err(problem) => {
                    eprintln!(
                        "pycov: warning: {}: {path}: {problem}; left out",
                        input.display()
                    );
                }
            }
        }
        rest
    }
}

/// SQLite's file header: coverage.py's `.coverage` files start with it.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// The order inputs merge in, by their first bytes: pycov data first, then
/// files that carry statements (LCOV, XML), then coverage.py data, which
/// only adds executed lines to files the others know.
fn merge_rank(input: &Path) -> u8 {
    let mut start = [0u8; 16];
    let read = std::fs::File::open(input)
        .and_then(|mut file| std::io::Read::read(&mut file, &mut start))
        .unwrap_or(0);
    let start = &start[..read];
    if start.starts_with(datafile::MAGIC) {
        0
    } else if start.starts_with(SQLITE_MAGIC) {
        2
    } else {
        1
    }
}

/// `inputs` in merge order ([`merge_rank`]), each group in its order, with
/// whether each is pycov data.
pub(crate) fn natives_first(inputs: Vec<PathBuf>) -> Vec<(PathBuf, bool)> {
    let mut ranked: Vec<(u8, PathBuf)> = inputs.into_iter().map(|p| (merge_rank(&p), p)).collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(rank, p)| (p, rank == 0)).collect()
}

/// Reads `input` (a pycov data file, an LCOV tracefile, Cobertura XML or
/// coverage.py's `.coverage`) and merges it into `merged` through the path
/// rules. pycov data without rules merges straight from its bytes; other
/// tools' lines count only among the statements pycov data already has for
/// a file.
pub(crate) fn merge_input(
    merged: &mut CoverageData,
    input: &Path,
    aliases: &PathAliases,
    cwd: &Path,
    analysis: Option<&SourceAnalysis<'_>>,
) -> Result<Vec<MergeConflict>> {
    let bytes = std::fs::read(input).map_err(|source| DataFileError::Read {
        path: input.to_owned(),
        source,
    })?;
    if bytes.starts_with(datafile::MAGIC) {
        if aliases.is_empty() {
            if let Some(conflicts) = datafile::merge_encoded_absolute(&bytes, input, merged)? {
                return Ok(conflicts);
            }
        }
        let (data, mut conflicts) = remap(datafile::decode(&bytes, input)?, aliases, cwd);
        conflicts.extend(merged.merge(data));
        return Ok(conflicts);
    }
    if bytes.starts_with(SQLITE_MAGIC) {
        let data = read_coveragepy(input, cwd).with_context(|| format!("{}", input.display()))?;
        let (mut data, conflicts) = remap(data, aliases, cwd);
        if let Some(analysis) = analysis {
            data = analysis.translate(merged, data, input);
        }
        let unknown = merged.merge_executed(data);
        if let Some(first) = unknown.first() {
            let remedy = if analysis.is_some() {
                "their sources are not here"
            } else {
                "pycov knows no statements for them; run this command from pycov's Python package, which analyses their sources"
            };
            eprintln!(
                "pycov: warning: {}: {} file(s) only coverage.py measured are left out, as {remedy} (e.g. {first})",
                input.display(),
                unknown.len()
            );
        }
        return Ok(conflicts);
    }
    let text = std::str::from_utf8(&bytes).ok();
    if let Some(text) = text.filter(|t| looks_like_lcov(t)) {
        let data = read_lcov(text, cwd).with_context(|| format!("{}", input.display()))?;
        let (data, conflicts) = remap(data, aliases, cwd);
        merged.merge_foreign(data);
        return Ok(conflicts);
    }
    if let Some(text) = text.filter(|t| looks_like_xml(t)) {
        let data = read_cobertura(text, cwd).with_context(|| format!("{}", input.display()))?;
        let (data, conflicts) = remap(data, aliases, cwd);
        merged.merge_foreign(data);
        return Ok(conflicts);
    }
    anyhow::bail!(
        "{} is not a pycov data file, an LCOV tracefile or Cobertura XML",
        input.display()
    )
}

/// Says which files of `input` could not be merged; returns whether all
/// were.
fn report_conflicts(conflicts: &[MergeConflict], input: &Path) -> bool {
    for conflict in conflicts {
        eprintln!(
            "pycov: error: {}: {} was measured with other statements than in the data before it (its source changed); not merged",
            input.display(),
            conflict.path
        );
    }
    conflicts.is_empty()
}

/// Warns about measured files that are not on this machine: data from
/// elsewhere that no `[tool.pycov.paths]` rule maps.
pub(crate) fn warn_unmapped(data: &CoverageData) {
    const SHOWN: usize = 5;
    let missing: Vec<&str> = data
        .files()
        .map(|(path, _)| path)
        .filter(|path| !Path::new(path).exists())
        .collect();
    for path in missing.iter().take(SHOWN) {
        eprintln!(
            "pycov: warning: {path} does not exist here; add a [tool.pycov.paths] rule to map it onto this checkout"
        );
    }
    if missing.len() > SHOWN {
        eprintln!(
            "pycov: warning: and {} more files that do not exist here",
            missing.len() - SHOWN
        );
    }
}

/// `pycov combine`.
pub(crate) fn combine_command(
    args: CombineArgs,
    runner: Option<&dyn ProgramRunner>,
) -> Result<Outcome> {
    let cwd = current_dir()?;
    let config = load_config(&cwd)?;
    let output = data_file_path(args.data_file.data_file.as_ref(), &config, &cwd);
    let aliases = path_aliases(&config, &cwd)?;
    let analysis = SourceAnalysis::new(runner, &config)?;

    let mut inputs = Vec::new();
    if args.paths.is_empty() {
        inputs = pending_parallel_files(&output)?;
    }
    for path in &args.paths {
        let path = cwd.join(path);
        if path.is_dir() {
            inputs.extend(parallel_files(&output, &path)?);
        } else if path.is_file() {
            inputs.push(path);
        } else {
            anyhow::bail!("no data file or directory {}", path.display());
        }
    }
    // The same file named twice, or the output itself under another
    // spelling, would be merged twice or deleted after being written.
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let output_key = canonical(&output);
    let mut seen = std::collections::HashSet::new();
    inputs.retain(|input| {
        let key = canonical(input);
        key != output_key && seen.insert(key)
    });
    let inputs = natives_first(inputs);
    if inputs.is_empty() {
        anyhow::bail!("no data to combine (no {}.* files)", output.display());
    }

    let mut merged = CoverageData::default();
    if args.append && output.exists() {
        merge_input(&mut merged, &output, &aliases, &cwd, analysis.as_ref())?;
    }
    let mut failed = false;
    let mut combined = Vec::new();
    for (input, native) in &inputs {
        match merge_input(&mut merged, input, &aliases, &cwd, analysis.as_ref()) {
            Ok(conflicts) => {
                if report_conflicts(&conflicts, input) {
                    combined.push((input, *native));
                } else {
                    failed = true;
                }
            }
            Err(err) => {
                eprintln!("pycov: error: {err:#}; not combined");
                failed = true;
            }
        }
    }
    if combined.is_empty() || merged.is_empty() {
        // Nothing merged (a `.coverage` alone adds lines only to files
        // others know): leave the data file as it was.
        if !failed {
            eprintln!("pycov: error: no data to combine: the inputs name no file pycov can report");
        }
        return Ok(Outcome::Exit(EXIT_ERROR));
    }
    if args.relative_files || config.relative_files == Some(true) {
        let root = std::fs::canonicalize(&cwd).unwrap_or_else(|_| cwd.clone());
        merged = merged.rename_files(|path| relative_to_root(path, &root)).0;
    }
    datafile::write(&output, &merged)?;
    for (input, native) in combined {
        if !args.quiet {
            println!("Combined data file {}", relative_to(input, &cwd).display());
        }
        // Other tools' files (LCOV, XML) belong to the user: never removed.
        if !args.keep && native {
            std::fs::remove_file(input)
                .with_context(|| format!("cannot remove {}", input.display()))?;
        }
    }
    warn_unmapped(&merged);
    Ok(Outcome::Exit(if failed { EXIT_ERROR } else { 0 }))
}

fn relative_to<'a>(path: &'a Path, cwd: &Path) -> &'a Path {
    path.strip_prefix(cwd).unwrap_or(path)
}
