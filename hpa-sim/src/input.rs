//! Reading the simulator's input files: YAML documents and CSV tables, each error naming the
//! file and the line.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The I/O error is shown in the message, not chained as a source: `{:#}` would print it
    /// twice.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: malformed YAML: {what}")]
    Yaml { path: PathBuf, what: String },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}:{line}: {what}")]
    Csv {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

pub fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|error| InputError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses a YAML file into `T`; the error carries the parser's line, column and excerpt.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = read_text(path)?;
    serde_saphyr::from_str::<T>(&text).map_err(|e| InputError::Yaml {
        path: path.to_path_buf(),
        what: e
            .to_string()
            .replace("<input>", &path.display().to_string()),
    })
}

/// A CSV table of numbers: a header line (kept as the column names) and rows of floats.
/// Blank lines and lines starting with `#` are skipped.
pub struct Table {
    pub columns: Vec<String>,
    /// `(line number, values)`.
    pub rows: Vec<(usize, Vec<f64>)>,
}

pub fn read_csv(path: &Path, min_columns: usize) -> Result<Table, InputError> {
    let text = read_text(path)?;
    let mut columns = None;
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if columns.is_none() {
            if cells.iter().all(|c| c.parse::<f64>().is_err()) {
                columns = Some(cells.iter().map(|c| c.to_string()).collect::<Vec<_>>());
                continue;
            }
            columns = Some((0..cells.len()).map(|i| format!("column{i}")).collect());
        }
        let width = columns.as_ref().map_or(0, Vec::len);
        if cells.len() != width {
            return Err(InputError::Csv {
                path: path.to_path_buf(),
                line,
                what: format!("{} fields where the header has {width}", cells.len()),
            });
        }
        let mut vals = Vec::with_capacity(cells.len());
        for (c, cell) in cells.iter().enumerate() {
            let v: f64 = cell.parse().map_err(|_| InputError::Csv {
                path: path.to_path_buf(),
                line,
                what: format!("field {} ({cell:?}) is not a number", c + 1),
            })?;
            if !v.is_finite() {
                return Err(InputError::Csv {
                    path: path.to_path_buf(),
                    line,
                    what: format!("field {} ({cell:?}) is not a finite number", c + 1),
                });
            }
            vals.push(v);
        }
        rows.push((line, vals));
    }
    let columns = columns.unwrap_or_default();
    if columns.len() < min_columns {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            what: format!(
                "expected at least {min_columns} columns, found {}",
                columns.len()
            ),
        });
    }
    if rows.is_empty() {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            what: "no data rows".into(),
        });
    }
    Ok(Table { columns, rows })
}
