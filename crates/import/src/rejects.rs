//! What happens to a bad row: by default it ends the import; with `--rejects FILE` it is
//! written there, one JSON object per line, and the import goes on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::ImportError;

/// Where in its input a row was.
#[derive(Debug, Clone, Copy)]
pub enum Position {
    /// 1-based line of a text file.
    Line(u64),
    /// 1-based row of a Parquet file.
    Row(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Row(n) => write!(f, "row {n}"),
        }
    }
}

pub struct Rejects {
    writer: Option<BufWriter<File>>,
    path: String,
    pub count: u64,
}

impl Rejects {
    pub fn fail_fast() -> Self {
        Self { writer: None, path: String::new(), count: 0 }
    }

    pub fn to_file(path: &Path) -> Result<Self, ImportError> {
        let file = File::create(path)
            .map_err(|e| ImportError::input(&path.display().to_string(), format!("cannot create rejects file: {e}")))?;
        Ok(Self { writer: Some(BufWriter::new(file)), path: path.display().to_string(), count: 0 })
    }

    /// Records a bad row, or turns it into the import's error when there is no rejects file.
    pub fn reject(
        &mut self,
        input: &str,
        position: Position,
        reason: String,
        record: impl FnOnce() -> String,
    ) -> Result<(), ImportError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(ImportError::BadRow { input: input.to_string(), position, reason });
        };
        self.count += 1;
        let (kind, number) = match position {
            Position::Line(n) => ("line", n),
            Position::Row(n) => ("row", n),
        };
        let line = serde_json::json!({ "file": input, kind: number, "reason": reason, "record": record() });
        writeln!(writer, "{line}").map_err(|e| self.write_error(e))
    }

    pub fn finish(&mut self) -> Result<(), ImportError> {
        match self.writer.as_mut() {
            Some(w) => w.flush().map_err(|e| ImportError::input(&self.path, format!("writing rejects: {e}"))),
            None => Ok(()),
        }
    }

    fn write_error(&self, e: std::io::Error) -> ImportError {
        ImportError::input(&self.path, format!("writing rejects: {e}"))
    }
}
