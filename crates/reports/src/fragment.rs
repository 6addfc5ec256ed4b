//! User SQL inside report options: splitting the options text, and checking each fragment
//! before it is spliced into a report's SQL.
//!
//! Both use sqlparser's tokenizer with the session's dialect (the one that later parses the
//! report's SQL), so quotes, quoted identifiers and comments are read here exactly as they will
//! be read there. A fragment is spliced as its own text once it is verified to be exactly one
//! expression (or one name), never re-serialized from the AST: sqlparser's `Display` leaves a
//! `\'` inside a string unescaped, which reads back as the end of the string (docs/decisions.md).

use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::sql::parser::{DFParser, DFParserBuilder};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// Where a fragment comes from, for error messages: `report: what …`.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub report: &'static str,
    pub what: &'a str,
}

fn tokens(origin: Origin, text: &str, dialect: &dyn Dialect) -> Result<Vec<TokenWithSpan>> {
    Tokenizer::new(dialect, text)
        .tokenize_with_location()
        .map_err(|e| plan_datafusion_err!("{}: {}: {e}", origin.report, origin.what))
}

/// Splits `text` at each top-level `separator` token: not inside a string, a quoted identifier,
/// a comment, or parentheses/brackets. Returns the trimmed pieces of the original text.
pub fn split_top_level<'t>(
    origin: Origin,
    text: &'t str,
    separator: &Token,
    dialect: &dyn Dialect,
) -> Result<Vec<&'t str>> {
    let offsets = ByteOffsets::new(text);
    let mut pieces = vec![];
    let (mut start, mut depth) = (0usize, 0usize);
    for t in tokens(origin, text, dialect)? {
        match &t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            token if token == separator && depth == 0 => {
                let at = offsets.of(t.span.start.line, t.span.start.column);
                pieces.push(text[start..at].trim());
                start = offsets.of(t.span.end.line, t.span.end.column);
            }
            _ => {}
        }
    }
    pieces.push(text[start..].trim());
    Ok(pieces)
}

/// Byte offsets of the tokenizer's 1-based (line, column in characters) locations.
struct ByteOffsets {
    /// Per line, the byte offset of each character, plus one past the line's end.
    lines: Vec<Vec<usize>>,
}

impl ByteOffsets {
    fn new(text: &str) -> Self {
        let mut lines = vec![vec![]];
        for (i, c) in text.char_indices() {
            lines.last_mut().expect("one line at least").push(i);
            if c == '\n' {
                lines.push(vec![]);
            }
        }
        lines.last_mut().expect("one line at least").push(text.len());
        ByteOffsets { lines }
    }

    fn of(&self, line: u64, column: u64) -> usize {
        self.lines[line as usize - 1][column as usize - 1]
    }
}

/// Checks the tokens every fragment shares rules for: no `;` (a fragment never ends a
/// statement) and no comments (a `--` comment would hide the SQL spliced after it).
fn plain_tokens(origin: Origin, text: &str, dialect: &dyn Dialect) -> Result<Vec<TokenWithSpan>> {
    let tokens = tokens(origin, text, dialect)?;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                return plan_err!(
                    "{}: {} must be one SQL expression without ';', got '{text}'",
                    origin.report,
                    origin.what
                )
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return plan_err!("{}: {} may not contain SQL comments, got '{text}'", origin.report, origin.what)
            }
            _ => {}
        }
    }
    Ok(tokens)
}

fn parser_message(e: DataFusionError) -> String {
    match e {
        DataFusionError::SQL(e, _) => e.to_string(),
        other => other.to_string(),
    }
}

/// `text` as exactly one SQL expression, parenthesized for splicing; otherwise an error
/// naming the option and what is wrong (a statement, trailing tokens, an alias, `;`).
pub fn expression(origin: Origin, text: &str, dialect: &dyn Dialect) -> Result<String> {
    let Origin { report, what } = origin;
    let tokens = plain_tokens(origin, text, dialect)?;
    let parsed = DFParserBuilder::new(tokens).with_dialect(dialect).build().and_then(|mut p| p.parse_into_expr());
    match parsed {
        Ok(e) if e.alias.is_some() => {
            plan_err!("{report}: {what} must be an expression without an alias, got '{text}'")
        }
        Ok(_) => Ok(format!("({})", text.trim())),
        Err(_) if DFParser::parse_sql_with_dialect(text, dialect).is_ok_and(|s| !s.is_empty()) => {
            plan_err!("{report}: {what} must be an SQL expression, not a statement, got '{text}'")
        }
        Err(e) => plan_err!("{report}: {what} must be one SQL expression, got '{text}': {}", parser_message(e)),
    }
}

/// `text` as exactly one table or view name (`events`, `analytics.events`, `"My Events"`).
pub fn object_name(origin: Origin, text: &str, dialect: &dyn Dialect) -> Result<String> {
    let Origin { report, what } = origin;
    let tokens = plain_tokens(origin, text, dialect)?;
    let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens);
    match parser.parse_object_name(false).and_then(|_| parser.expect_token(&Token::EOF)) {
        Ok(_) => Ok(text.trim().to_string()),
        Err(e) => plan_err!("{report}: {what} must be a table or view name, got '{text}': {e}"),
    }
}

/// `text` as an SQL string literal, checked to read back as `text` in `dialect` (a dialect
/// with backslash escapes would read `'a\'` differently).
pub fn string_literal(origin: Origin, text: &str, dialect: &dyn Dialect) -> Result<String> {
    let literal = format!("'{}'", text.replace('\'', "''"));
    match Tokenizer::new(dialect, &literal).tokenize() {
        Ok(tokens) if tokens == [Token::SingleQuotedString(text.to_string())] => Ok(literal),
        _ => {
            plan_err!("{}: {} cannot be written as an SQL string in this dialect: '{text}'", origin.report, origin.what)
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::{GenericDialect, MySqlDialect};

    use super::*;

    const WHERE: Origin = Origin { report: "trends", what: "where" };

    fn expr(text: &str) -> Result<String> {
        expression(WHERE, text, &GenericDialect {})
    }

    fn err(result: Result<String>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn one_expression_is_spliced_as_written_in_parentheses() {
        assert_eq!(expr("json_get_str(properties,'plan')='pro'").unwrap(), "(json_get_str(properties,'plan')='pro')");
        assert_eq!(expr(" a = 1 OR b IN (SELECT x FROM t) ").unwrap(), "(a = 1 OR b IN (SELECT x FROM t))");
    }

    #[test]
    fn what_is_not_one_expression_is_refused() {
        let e = err(expr("1=1) OR (1=1"));
        assert!(e.contains("trends: where must be one SQL expression, got '1=1) OR (1=1'"), "{e}");
        assert!(e.contains("Expected: end of expression, found: )"), "{e}");
        assert!(err(expr("a = 1 b")).contains("must be one SQL expression"));
        assert!(err(expr("SELECT 1")).contains("where must be an SQL expression, not a statement"));
        assert!(err(expr("DROP TABLE events")).contains("not a statement"));
        assert!(err(expr("TRUE; DROP TABLE events")).contains("without ';'"));
        assert!(err(expr("TRUE -- and the rest")).contains("may not contain SQL comments"));
        assert!(err(expr("TRUE /* x */")).contains("may not contain SQL comments"));
        assert!(err(expr("a AS b")).contains("without an alias"));
        assert!(err(expr("")).contains("must be one SQL expression"));
        assert!(err(expr("event = 'open")).contains("Unterminated string literal"));
    }

    #[test]
    fn a_backslash_before_a_quote_stays_inside_the_string() {
        // The string is `x\' OR TRUE --`. Re-serializing the AST would print it as
        // `'x\' OR TRUE --'`, which DataFusion reads as the string `x\` then `OR TRUE`.
        let text = r"event = 'x\'' OR TRUE --'";
        assert_eq!(expr(text).unwrap(), format!("({text})"));
    }

    #[test]
    fn names_are_one_object_name() {
        let table = Origin { report: "funnel", what: "table" };
        let name = |t: &str| object_name(table, t, &GenericDialect {});
        assert_eq!(name("events").unwrap(), "events");
        assert_eq!(name("analytics.\"My Events\"").unwrap(), "analytics.\"My Events\"");
        assert!(name("events WHERE TRUE").unwrap_err().to_string().contains("table must be a table or view name"));
        assert!(name("events; DROP TABLE x").unwrap_err().to_string().contains("without ';'"));
    }

    #[test]
    fn string_literals_double_quotes_and_read_back() {
        let step = Origin { report: "funnel", what: "step 1" };
        assert_eq!(string_literal(step, "it's", &GenericDialect {}).unwrap(), "'it''s'");
        assert_eq!(string_literal(step, r"a\", &GenericDialect {}).unwrap(), r"'a\'");
        assert!(string_literal(step, r"a\", &MySqlDialect {}).unwrap_err().to_string().contains("cannot be written"));
    }

    #[test]
    fn splitting_respects_quotes_and_parentheses() {
        let options = Origin { report: "trends", what: "options" };
        let split = |t| split_top_level(options, t, &Token::SemiColon, &GenericDialect {}).unwrap();
        assert_eq!(split("a=1; b = 'x;y' ;c=\"q;\""), ["a=1", "b = 'x;y'", "c=\"q;\""]);
        assert_eq!(split("w=f(';', 'it''s; ok'); z=[1;2]"), ["w=f(';', 'it''s; ok')", "z=[1;2]"]);
        assert_eq!(split("é='ü;'; x=1"), ["é='ü;'", "x=1"]);
        assert_eq!(split("a\n;b"), ["a", "b"]);
        assert!(split_top_level(options, "where=event = 'a", &Token::SemiColon, &GenericDialect {})
            .unwrap_err()
            .to_string()
            .contains("trends: options: Unterminated string literal"));
    }
}
