//! `[tool.pycov]` in `pyproject.toml`: defaults that command-line flags
//! override.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The settings `[tool.pycov]` can hold; `None` where not set.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Config {
    /// Where the file came from (for messages).
    pub origin: Option<PathBuf>,
    /// `data_file = ".pycov"`
    pub data_file: Option<PathBuf>,
    /// `source = ["src", "mypkg"]`
    pub source: Vec<String>,
    /// `include = ["*/mine/*"]`
    pub include: Vec<String>,
    /// `omit = ["*/tests/*"]`
    pub omit: Vec<String>,
    /// `exclude_lines = [...]`: replaces the default exclusion regexes.
    pub exclude_lines: Option<Vec<String>>,
    /// `exclude_also = [...]`: added to the defaults (or `exclude_lines`).
    pub exclude_also: Vec<String>,
    /// `show_missing = true`
    pub show_missing: Option<bool>,
    /// `skip_covered = true`
    pub skip_covered: Option<bool>,
    /// `skip_empty = true`
    pub skip_empty: Option<bool>,
    /// `sort = "-cover"`
    pub sort: Option<String>,
    /// `relative_files = true`: data files store paths relative to the
    /// project, and the XML report names files and sources relative to it.
    pub relative_files: Option<bool>,
    /// `xml_package_depth = 2`: directory levels that make an XML package.
    pub xml_package_depth: Option<usize>,
    /// `precision = 2`
    pub precision: Option<usize>,
    /// `fail_under = 90`
    pub fail_under: Option<f64>,
    /// `parallel = true`: `pycov run` writes `.pycov.<host>.<pid>.<random>`.
    pub parallel: Option<bool>,
    /// `subprocesses = true`: `pycov run` measures Python subprocesses too.
    pub subprocesses: Option<bool>,
    /// `[tool.pycov.paths]`: name -> [local root, other roots or globs...],
    /// in file order.
    pub paths: Vec<(String, Vec<String>)>,
    /// Keys pycov does not know (warned about, not fatal).
    pub unknown: Vec<String>,
}

const KNOWN: &[&str] = &[
    "data_file",
    "source",
    "include",
    "omit",
    "exclude_lines",
    "exclude_also",
    "show_missing",
    "skip_covered",
    "skip_empty",
    "sort",
    "relative_files",
    "xml_package_depth",
    "precision",
    "fail_under",
    "parallel",
    "subprocesses",
    "paths",
];

impl Config {
    /// Reads `pyproject.toml` in `dir`, if there is one.
    pub fn discover(dir: &Path) -> Result<Config> {
        let path = dir.join("pyproject.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Parses the `[tool.pycov]` table of a `pyproject.toml` text.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let document: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let Some(section) = document.get("tool").and_then(|t| t.get("pycov")) else {
            return Ok(Config::default());
        };
        let Some(table) = section.as_table() else {
            bail!("{}: [tool.pycov] must be a table", path.display());
        };
        let field = Field { path, table };
        let mut config = Config {
            origin: Some(path.to_owned()),
            data_file: field.string("data_file")?.map(PathBuf::from),
            source: field.strings("source")?.unwrap_or_default(),
            include: field.strings("include")?.unwrap_or_default(),
            omit: field.strings("omit")?.unwrap_or_default(),
            exclude_lines: field.strings("exclude_lines")?,
            exclude_also: field.strings("exclude_also")?.unwrap_or_default(),
            show_missing: field.boolean("show_missing")?,
            skip_covered: field.boolean("skip_covered")?,
            skip_empty: field.boolean("skip_empty")?,
            sort: field.string("sort")?,
            relative_files: field.boolean("relative_files")?,
            xml_package_depth: field.positive("xml_package_depth")?,
            precision: field.precision()?,
            fail_under: field.number("fail_under")?,
            parallel: field.boolean("parallel")?,
            subprocesses: field.boolean("subprocesses")?,
            paths: field.paths()?,
            unknown: Vec::new(),
        };
        config.unknown = table
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok(config)
    }
}

struct Field<'a> {
    path: &'a Path,
    table: &'a toml::Table,
}

impl Field<'_> {
    fn wrong(&self, key: &str, expected: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: [tool.pycov] {key} must be {expected}",
            self.path.display()
        )
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// A list of strings, or one string (comma-separated, as coverage.py
    /// allows in its ini files).
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(String::from)
                        .ok_or_else(|| self.wrong(key, "a list of strings"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.wrong(key, "a list of strings")),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) => Ok(Some(*n as f64)),
            Some(toml::Value::Float(x)) => Ok(Some(*x)),
            Some(_) => Err(self.wrong(key, "a number")),
        }
    }

    fn positive(&self, key: &str) -> Result<Option<usize>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (1..=1000).contains(n) => Ok(Some(*n as usize)),
            Some(_) => Err(self.wrong(key, "an integer from 1 to 1000")),
        }
    }

    /// `[tool.pycov.paths]`: a table of non-empty lists of strings.
    fn paths(&self) -> Result<Vec<(String, Vec<String>)>> {
        let Some(value) = self.table.get("paths") else {
            return Ok(Vec::new());
        };
        let wrong = || {
            anyhow::anyhow!(
                "{}: [tool.pycov.paths] must map names to non-empty lists of paths",
                self.path.display()
            )
        };
        let table = value.as_table().ok_or_else(wrong)?;
        table
            .iter()
            .map(|(name, entry)| {
                let list = entry
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(wrong)?;
                let paths = list
                    .iter()
                    .map(|item| item.as_str().map(String::from).ok_or_else(wrong))
                    .collect::<Result<Vec<_>>>()?;
                Ok((name.clone(), paths))
            })
            .collect()
    }

    fn precision(&self) -> Result<Option<usize>> {
        match self.table.get("precision") {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (0..=20).contains(n) => Ok(Some(*n as usize)),
            Some(_) => Err(self.wrong("precision", "an integer from 0 to 20")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/p/pyproject.toml"))
    }

    #[test]
    fn reads_the_pycov_table() {
        let config = parse(
            r#"
            [project]
            name = "x"
            [tool.pycov]
            source = ["src", "pkg"]
            omit = "*/tests/*, */gen/*"
            exclude_also = ["raise NotImplementedError"]
            show_missing = true
            precision = 2
            fail_under = 87.5
            skip_empty = true
            sort = "-Cover"
            relative_files = true
            xml_package_depth = 2
            colour = "always"
            "#,
        )
        .expect("valid");
        assert_eq!(config.source, vec!["src", "pkg"]);
        assert_eq!(config.omit, vec!["*/tests/*", "*/gen/*"]);
        assert_eq!(config.exclude_also, vec!["raise NotImplementedError"]);
        assert_eq!(config.show_missing, Some(true));
        assert_eq!(config.precision, Some(2));
        assert_eq!(config.fail_under, Some(87.5));
        assert_eq!(config.unknown, vec!["colour"]);
        assert_eq!(config.exclude_lines, None);
        assert_eq!(config.skip_empty, Some(true));
        assert_eq!(config.sort.as_deref(), Some("-Cover"));
        assert_eq!(config.relative_files, Some(true));
        assert_eq!(config.xml_package_depth, Some(2));
    }

    #[test]
    fn no_table_means_defaults() {
        assert_eq!(
            parse("[tool.black]\nline-length = 100\n").expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn wrong_types_name_the_file_and_key() {
        let err = parse("[tool.pycov]\nprecision = \"two\"\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "/p/pyproject.toml: [tool.pycov] precision must be an integer from 0 to 20"
        );
        let err = parse("[tool.pycov\n").expect_err("bad toml");
        assert!(err.to_string().contains("not valid TOML"), "{err}");
    }
}
