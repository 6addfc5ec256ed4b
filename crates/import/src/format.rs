//! Input formats and how a file's format is told from its name.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use crate::ImportError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!("unknown format '{other}' (expected ndjson, csv or parquet)")),
        }
    }
}

/// One input as named on the command line: a path or `-` for stdin.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub format: Format,
    pub gzip: bool,
}

impl InputSpec {
    /// Resolves the format: `explicit` wins; otherwise the extension (after an optional `.gz`).
    pub fn resolve(name: &str, explicit: Option<Format>) -> Result<Self, ImportError> {
        let gzip = name.ends_with(".gz");
        let stem = name.strip_suffix(".gz").unwrap_or(name);
        let format = match explicit {
            Some(f) => f,
            None if name == "-" => {
                return Err(ImportError::input(name, "reading stdin needs --format (ndjson, csv or parquet)"))
            }
            None => {
                let ext = Path::new(stem).extension().and_then(|e| e.to_str()).unwrap_or("");
                ext.parse().map_err(|_| {
                    ImportError::input(
                        name,
                        format!("cannot tell the format from the extension '.{ext}'; use --format ndjson|csv|parquet"),
                    )
                })?
            }
        };
        if format == Format::Parquet && (gzip || name == "-") {
            return Err(ImportError::input(
                name,
                "Parquet input must be an uncompressed file (Parquet compresses internally)",
            ));
        }
        Ok(Self { name: name.to_string(), format, gzip })
    }

    /// Opens a text input (NDJSON, CSV), decompressing gzip, counting raw bytes read.
    pub fn open_text(&self, counter: crate::progress::ByteCounter) -> Result<Box<dyn BufRead + Send>, ImportError> {
        let raw: Box<dyn Read + Send> = if self.name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(&self.name).map_err(|e| ImportError::input(&self.name, e.to_string()))?)
        };
        let counted = counter.wrap(raw);
        let reader: Box<dyn Read + Send> =
            if self.gzip { Box::new(flate2::read::MultiGzDecoder::new(counted)) } else { Box::new(counted) };
        Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
    }

    /// Size on disk, for the progress bar; unknown for stdin.
    pub fn size(&self) -> Option<u64> {
        if self.name == "-" {
            None
        } else {
            std::fs::metadata(&self.name).ok().map(|m| m.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_extension_through_gzip() {
        assert_eq!(InputSpec::resolve("a.ndjson", None).unwrap().format, Format::Ndjson);
        assert_eq!(InputSpec::resolve("a.jsonl.gz", None).unwrap().format, Format::Ndjson);
        let csv = InputSpec::resolve("dir/a.csv.gz", None).unwrap();
        assert!(csv.gzip && csv.format == Format::Csv);
        assert_eq!(InputSpec::resolve("a.parquet", None).unwrap().format, Format::Parquet);
        assert_eq!(InputSpec::resolve("a.txt", Some(Format::Csv)).unwrap().format, Format::Csv);
    }

    #[test]
    fn unknown_extensions_and_bare_stdin_are_errors() {
        let err = InputSpec::resolve("events.xml", None).unwrap_err().to_string();
        assert!(err.contains("events.xml") && err.contains("'.xml'"), "{err}");
        assert!(InputSpec::resolve("-", None).unwrap_err().to_string().contains("--format"));
        assert!("xml".parse::<Format>().unwrap_err().contains("unknown format 'xml'"));
        assert!(InputSpec::resolve("a.parquet.gz", None).is_err());
    }
}
