//! Reading the raw files of a run folder; a missing file is `None`, a file that is there but
//! cannot be read or parsed is an error (the report must not quietly drop a measurement).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The text of `name`, `None` when it is not there.
    pub fn text(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// A numbers file: one unsigned integer per line.
    pub fn numbers(&self, name: &str) -> Result<Option<Vec<u64>>> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        parse_numbers(&text)
            .map(Some)
            .map_err(|(line, message)| Error::Parse {
                path: self.file(name),
                line,
                message,
            })
    }

    /// A numbers file of one number (its last, should there be more).
    pub fn number(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.numbers(name)?.and_then(|v| v.last().copied()))
    }

    /// How many lines `name` has (an access-log slice: one line per request).
    pub fn lines(&self, name: &str) -> Result<Option<u64>> {
        Ok(self
            .text(name)?
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as u64))
    }

    /// A JSON file.
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::Json {
                path: self.file(name),
                source,
            })
    }
}

/// The numbers of a numbers file, or the 1-based line that is not one.
pub fn parse_numbers(text: &str) -> std::result::Result<Vec<u64>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim()
                .parse::<u64>()
                .map_err(|e| (i + 1, format!("{:?} is not a number: {e}", l.trim())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_one_per_line() {
        assert_eq!(parse_numbers("1\n\n22\n333\n"), Ok(vec![1, 22, 333]));
        assert_eq!(parse_numbers(""), Ok(vec![]));
        assert_eq!(parse_numbers("1\nfail\n").map_err(|e| e.0), Err(2));
    }
}
