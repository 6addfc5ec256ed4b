//! PostgreSQL's COPY text format (see PostgreSQL's documentation, "COPY — Text Format"): fields
//! separated by the delimiter, `\N` for NULL, and backslash escapes for the bytes that would
//! otherwise end a field or a line.

/// Splits one line (without its newline) into fields: a backslash-escaped delimiter does not
/// separate fields. A field equal to `null` as written (before de-escaping, as PostgreSQL
/// compares it) is `None`.
pub fn parse_line(line: &[u8], delimiter: u8, null: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i <= line.len() {
        if i == line.len() || line[i] == delimiter {
            let raw = &line[start..i];
            fields.push((raw != null).then(|| unescape(raw)));
            start = i + 1;
        } else if line[i] == b'\\' && i + 1 < line.len() {
            // The escaped byte is data, even when it is the delimiter.
            i += 1;
        }
        i += 1;
    }
    fields
}

/// Decodes the backslash escapes of one field: `\b \f \n \r \t \v`, `\NNN` (one to three
/// octal digits), `\xHH` (one or two hex digits); a backslash before any other character is
/// that character, and a trailing backslash stays.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' || i == field.len() {
            out.push(b);
            continue;
        }
        let escaped = field[i];
        i += 1;
        out.push(match escaped {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            // PostgreSQL keeps the low byte of `\777`.
            b'0'..=b'7' => (take_digits(field, &mut i, 8, 2, u32::from(escaped - b'0')) & 0xff) as u8,
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => take_digits(field, &mut i, 16, 2, 0) as u8,
            other => other,
        });
    }
    out
}

/// Appends up to `most` digits of `radix` at `field[*i..]` to `value`, moving `*i` past them.
fn take_digits(field: &[u8], i: &mut usize, radix: u32, most: usize, mut value: u32) -> u32 {
    for _ in 0..most {
        match field.get(*i).and_then(|d| char::from(*d).to_digit(radix)) {
            Some(d) => {
                value = value * radix + d;
                *i += 1;
            }
            None => break,
        }
    }
    value
}

/// Encodes one field's value as PostgreSQL writes it: backslash, the delimiter, and the
/// control characters that have a letter escape.
pub fn escape(value: &[u8], delimiter: u8, out: &mut Vec<u8>) {
    for &b in value {
        let letter = match b {
            b'\\' => Some(b'\\'),
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            0x0b => Some(b'v'),
            b if b == delimiter => Some(b),
            _ => None,
        };
        match letter {
            Some(letter) => out.extend_from_slice(&[b'\\', letter]),
            None => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_escapes() {
        assert_eq!(unescape(br"\b\f\n\r\t\v\\"), b"\x08\x0c\n\r\t\x0b\\");
    }

    #[test]
    fn octal_escapes_take_one_to_three_digits() {
        assert_eq!(unescape(br"\101"), b"A");
        assert_eq!(unescape(br"\7"), b"\x07");
        assert_eq!(unescape(br"\61x"), b"1x");
        // Three digits at most: the fourth is data.
        assert_eq!(unescape(br"\1011"), b"A1");
        assert_eq!(unescape(br"\0"), b"\0");
        // An 8 is not octal.
        assert_eq!(unescape(br"\18"), b"\x018");
    }

    #[test]
    fn hex_escapes_take_one_or_two_digits() {
        assert_eq!(unescape(br"\x41"), b"A");
        assert_eq!(unescape(br"\x4"), b"\x04");
        assert_eq!(unescape(br"\x4g"), b"\x04g");
        assert_eq!(unescape(br"\x414"), b"A4");
        // `\x` without a hex digit is an x, as a backslash before any other character.
        assert_eq!(unescape(br"\xg"), b"xg");
    }

    #[test]
    fn other_escaped_characters_are_themselves() {
        assert_eq!(unescape(br"\a\,\N\."), b"a,N.");
        assert_eq!(unescape(br"end\"), br"end\");
    }

    #[test]
    fn lines_split_on_unescaped_delimiters_and_null_is_compared_raw() {
        assert_eq!(
            parse_line(b"a\tb\\tc\t\\N\t", b'\t', b"\\N"),
            vec![Some(b"a".to_vec()), Some(b"b\tc".to_vec()), None, Some(vec![])]
        );
        assert_eq!(parse_line(br"x\,y,z", b',', b"\\N"), vec![Some(b"x,y".to_vec()), Some(b"z".to_vec())]);
        assert_eq!(parse_line(br"\\N", b'\t', b"\\N"), vec![Some(b"\\N".to_vec())]);
        assert_eq!(parse_line(br"a\", b'\t', b"\\N"), vec![Some(br"a\".to_vec())]);
    }

    #[test]
    fn escape_is_the_inverse_of_parse() {
        let value = b"tab\there\\back\nnew,comma\x08";
        let mut line = Vec::new();
        escape(value, b',', &mut line);
        assert_eq!(line, b"tab\\there\\\\back\\nnew\\,comma\\b");
        assert_eq!(parse_line(&line, b',', b"\\N"), vec![Some(value.to_vec())]);
    }
}
