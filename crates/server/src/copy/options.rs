//! A COPY statement's options: format (text, CSV or binary), delimiter, NULL string, quoting,
//! header.

use bytes::{Buf, BytesMut};
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::csv::CsvStyle;
use super::text;
use crate::errors::{error, FEATURE_NOT_SUPPORTED, SYNTAX_ERROR};

#[derive(Debug, Clone)]
pub struct CopyFormat {
    pub csv: bool,
    /// PostgreSQL's binary COPY format (COPY TO only).
    pub binary: bool,
    pub style: CsvStyle,
    pub header: bool,
}

impl CopyFormat {
    /// The format both option syntaxes describe (`WITH (FORMAT csv, …)` and the legacy
    /// `CSV HEADER …`), with PostgreSQL's defaults: text with tab and `\N`, CSV with comma and
    /// the empty string.
    pub fn from_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Self> {
        let mut csv = false;
        let mut binary = false;
        let mut header = false;
        let (mut quote, mut escape) = (b'"', b'"');
        let mut delimiter = None;
        let mut null = None;
        let byte = |c: char| -> PgWireResult<u8> {
            u8::try_from(c).map_err(|_| {
                error(FEATURE_NOT_SUPPORTED, format!("COPY delimiter and quote must be one ASCII character, not '{c}'"))
            })
        };
        let unsupported = |option: &dyn std::fmt::Display| {
            error(FEATURE_NOT_SUPPORTED, format!("COPY option {option} is not supported"))
        };
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                    "csv" => (csv, binary) = (true, false),
                    "text" => (csv, binary) = (false, false),
                    "binary" => (csv, binary) = (false, true),
                    other => {
                        return Err(error(
                            FEATURE_NOT_SUPPORTED,
                            format!("COPY format \"{other}\" is not supported: use text, csv or binary"),
                        ))
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = byte(*c)?,
                CopyOption::Escape(c) => escape = byte(*c)?,
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(unsupported(other)),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = byte(*c)?,
                            CopyLegacyCsvOption::Escape(c) => escape = byte(*c)?,
                            other => return Err(unsupported(other)),
                        }
                    }
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(byte(*c)?),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Binary => binary = true,
                other => return Err(unsupported(other)),
            }
        }
        if binary {
            // PostgreSQL refuses these in binary mode too ("cannot specify DELIMITER in BINARY mode").
            for (given, name) in [(header, "HEADER"), (delimiter.is_some(), "DELIMITER"), (null.is_some(), "NULL")] {
                if given {
                    return Err(error(SYNTAX_ERROR, format!("cannot specify {name} in BINARY mode")));
                }
            }
        }
        if header && !csv {
            return Err(error(FEATURE_NOT_SUPPORTED, "COPY HEADER is available only in CSV mode"));
        }
        let (default_delimiter, default_null) = if csv { (b',', "") } else { (b'\t', "\\N") };
        let style = CsvStyle {
            delimiter: delimiter.unwrap_or(default_delimiter),
            quote,
            escape,
            null: null.unwrap_or_else(|| default_null.to_string()),
        };
        Ok(CopyFormat { csv, binary, style, header })
    }

    fn header_line(&self, names: impl Iterator<Item = String>) -> Vec<u8> {
        let mut line = Vec::new();
        for (i, name) in names.enumerate() {
            if i > 0 {
                line.push(self.style.delimiter);
            }
            self.style.write_field(&mut line, name.as_bytes());
        }
        line.push(b'\n');
        line
    }

    /// What the output starts with: the binary format's signature, flags and (empty) header
    /// extension, or the CSV header line when asked for.
    pub fn prefix(&self, names: impl Iterator<Item = String>) -> Option<Vec<u8>> {
        if self.binary {
            let mut signature = b"PGCOPY\n\xff\r\n\0".to_vec();
            signature.extend_from_slice(&[0; 8]);
            return Some(signature);
        }
        self.header.then(|| self.header_line(names))
    }

    /// One COPY row from a DataRow (fields are length-prefixed, -1 for NULL): in binary, the
    /// field count and the fields as they are; otherwise a line of the text-format values.
    pub fn encode_row(&self, row: &DataRow, out: &mut Vec<u8>) {
        if self.binary {
            out.extend_from_slice(&row.field_count.to_be_bytes());
            out.extend_from_slice(&row.data);
            return;
        }
        let mut data = BytesMut::from(&row.data[..]).freeze();
        for i in 0..row.field_count {
            if i > 0 {
                out.push(self.style.delimiter);
            }
            let len = data.get_i32();
            if len < 0 {
                out.extend_from_slice(self.style.null.as_bytes());
                continue;
            }
            let value = data.split_to(len as usize);
            if self.csv {
                self.style.write_field(out, &value);
            } else {
                text::escape(&value, self.style.delimiter, out);
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn format_of(sql: &str) -> PgWireResult<CopyFormat> {
        match Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().pop() {
            Some(Statement::Copy { options, legacy_options, .. }) => {
                CopyFormat::from_options(&options, &legacy_options)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_format() {
        let text = format_of("COPY events FROM STDIN").unwrap();
        assert_eq!((text.csv, text.style.delimiter, text.style.null.as_str()), (false, b'\t', "\\N"));
        let csv = format_of("COPY events FROM STDIN WITH (FORMAT csv, HEADER true)").unwrap();
        assert_eq!((csv.csv, csv.header, csv.style.delimiter, csv.style.null.as_str()), (true, true, b',', ""));
        let legacy = format_of("COPY events FROM STDIN DELIMITER ';' CSV HEADER").unwrap();
        assert_eq!((legacy.csv, legacy.header, legacy.style.delimiter), (true, true, b';'));
    }

    #[test]
    fn unsupported_options_are_refused() {
        assert!(format_of("COPY events FROM STDIN WITH (FORMAT parquet)").is_err());
        assert!(format_of("COPY events FROM STDIN WITH (HEADER true)").is_err());
        for sql in [
            "COPY events TO STDOUT WITH (FORMAT binary, HEADER true)",
            "COPY events TO STDOUT WITH (FORMAT binary, DELIMITER ',')",
            "COPY events TO STDOUT WITH (FORMAT binary, NULL 'x')",
        ] {
            assert!(format_of(sql).err().unwrap().to_string().contains("in BINARY mode"), "{sql}");
        }
    }

    #[test]
    fn binary_is_named_by_either_syntax() {
        assert!(format_of("COPY events TO STDOUT WITH (FORMAT binary)").unwrap().binary);
        assert!(format_of("COPY events TO STDOUT BINARY").unwrap().binary);
        assert!(!format_of("COPY events TO STDOUT WITH (FORMAT binary, FORMAT csv)").unwrap().binary);
    }
}
