//! COPY's CSV format on output (input is read with the `csv` crate).

/// The CSV options of a COPY.
#[derive(Debug, Clone)]
pub struct CsvStyle {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    pub null: String,
}

impl CsvStyle {
    /// Writes one field, quoted when it would otherwise read back differently: empty (which
    /// would be NULL), equal to the NULL string, or holding a delimiter, quote or line break.
    pub fn write_field(&self, out: &mut Vec<u8>, value: &[u8]) {
        let needs_quotes = value.is_empty()
            || value.iter().any(|&b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r')
            || value == self.null.as_bytes();
        if !needs_quotes {
            out.extend_from_slice(value);
            return;
        }
        out.push(self.quote);
        for &b in value {
            if b == self.quote || b == self.escape {
                out.push(self.escape);
            }
            out.push(b);
        }
        out.push(self.quote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let style = CsvStyle { delimiter: b',', quote: b'"', escape: b'"', null: String::new() };
        let mut out = Vec::new();
        for value in [&b"plain"[..], b"a,b", b"say \"hi\"", b""] {
            style.write_field(&mut out, value);
            out.push(b'|');
        }
        assert_eq!(out, b"plain|\"a,b\"|\"say \"\"hi\"\"\"|\"\"|");
    }
}
