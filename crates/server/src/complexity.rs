//! Size and nesting limits of a statement, checked on its tokens before anything recursive sees
//! it.
//!
//! sqlparser builds `1+1+…+1` as a left-deep tree one level per operator, and its `Display`,
//! `Drop`, visitors and DataFusion's planner all recurse over that tree: 400,000 characters of
//! it overflowed the stack and killed the server, 40,000 took 74 s to plan past any timeout.
//! sqlparser's tokenizer is a loop, so the text is tokenized first and refused, with
//! PostgreSQL's SQLSTATEs (54000 program limit exceeded, 54001 statement too complex), when it
//! is longer, more deeply nested or has longer lists than any query a person or a BI tool
//! writes. The limits are in docs/clients.md.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use pgwire::error::PgWireError;

use crate::errors::error;

/// The longest statement text accepted, in bytes (large multi-row INSERTs fit).
pub const MAX_STATEMENT_BYTES: usize = 16 << 20;
/// The deepest expression accepted: parentheses plus operators chained at each level.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// The most items of one parenthesized list (an `IN (…)` list, a function's arguments).
pub const MAX_LIST_ITEMS: usize = 100_000;

pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const STATEMENT_TOO_COMPLEX: &str = "54001";

/// Stack that must be left before recursive work on a statement's tree starts on the thread's
/// own stack, and the size of the segment used instead when less is left. A tree at the
/// nesting limit takes about 4 MiB to clone in a debug build (three frames of ~1.3 KiB per
/// level); the segment is reserved address space, touched only as deep as the work goes.
const RED_ZONE: usize = 8 << 20;
const STACK_SEGMENT: usize = 64 << 20;

/// Runs `work` (recursive over a statement's tree: sqlparser's parsing, visitors, `Clone` and
/// `Display`) on a stack grown as needed, so that a statement within the limits never depends
/// on the size of the thread's stack (2 MiB on tokio's default workers, and debug builds use
/// large frames). DataFusion's planner grows its stack the same way (`recursive`).
pub fn deep<T>(work: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, work)
}

/// Whether a token joins operands into a deeper expression (`+`, `AND`, `::`, `NOT` …).
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(word) => matches!(word.keyword, Keyword::AND | Keyword::OR | Keyword::NOT | Keyword::IS),
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::Comma
        | Token::Whitespace(_)
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace
        | Token::SemiColon
        | Token::Period
        | Token::Colon
        | Token::Placeholder(_) => false,
        other => !is_literal(other),
    }
}

fn is_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
    )
}

/// One open parenthesis (or the statement itself): operators chained and items listed so far.
#[derive(Default)]
struct Level {
    operators: usize,
    items: usize,
}

/// Refuses `sql` when it exceeds a limit; a text that does not tokenize is left to the parser
/// (which names the syntax error).
pub fn check(sql: &str) -> Result<(), PgWireError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(error(
            PROGRAM_LIMIT_EXCEEDED,
            format!("statement of {} bytes exceeds the limit of {MAX_STATEMENT_BYTES} bytes", sql.len()),
        ));
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return Ok(()) };
    let mut levels = vec![Level::default()];
    // Depth of the innermost level: parentheses plus the operators chained on the way there.
    let mut depth = 0usize;
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket => {
                levels.push(Level::default());
                depth += 1;
            }
            Token::RParen | Token::RBracket if levels.len() > 1 => {
                let closed = levels.pop().expect("more than one level");
                depth -= 1 + closed.operators;
            }
            Token::Comma => {
                let level = levels.last_mut().expect("the statement level");
                depth -= level.operators;
                level.operators = 0;
                level.items += 1;
                if level.items >= MAX_LIST_ITEMS {
                    return Err(error(
                        PROGRAM_LIMIT_EXCEEDED,
                        format!("a list of more than {MAX_LIST_ITEMS} items exceeds the limit"),
                    ));
                }
            }
            Token::SemiColon => {
                levels.truncate(1);
                levels[0] = Level::default();
                depth = 0;
            }
            token if is_operator(token) => {
                levels.last_mut().expect("the statement level").operators += 1;
                depth += 1;
            }
            _ => {}
        }
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(error(
                STATEMENT_TOO_COMPLEX,
                format!(
                    "statement too complex: expression nesting exceeds the limit of {MAX_EXPRESSION_DEPTH} levels \
                     (parentheses and chained operators)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> Option<String> {
        check(sql).err().map(|e| match e {
            PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
            other => other.to_string(),
        })
    }

    #[test]
    fn long_operator_chains_and_deep_parentheses_are_refused() {
        let chain = format!("SELECT 1{}", "+1".repeat(MAX_EXPRESSION_DEPTH + 1));
        assert!(refused(&chain).unwrap().starts_with("54001"));
        let nested =
            format!("SELECT {}1{}", "(".repeat(MAX_EXPRESSION_DEPTH + 1), ")".repeat(MAX_EXPRESSION_DEPTH + 1));
        assert!(refused(&nested).unwrap().starts_with("54001"));
        let conditions =
            format!("SELECT * FROM events WHERE {}", vec!["event = 'a'"; MAX_EXPRESSION_DEPTH].join(" OR "));
        assert!(refused(&conditions).unwrap().starts_with("54001"));
    }

    #[test]
    fn queries_people_and_bi_tools_write_pass() {
        let in_list = format!("SELECT * FROM events WHERE user_id IN ({})", vec!["'u'"; 10_000].join(", "));
        let many_columns = format!("SELECT {} FROM events", vec!["a + b * c - d"; 2_000].join(", "));
        let many_statements = "SELECT 1 + 2 + 3;".repeat(2_000);
        let insert = format!("INSERT INTO events VALUES {}", vec!["('2025-01-01', 'u', 'e')"; 20_000].join(", "));
        for sql in [in_list, many_columns, many_statements, insert] {
            assert_eq!(refused(&sql), None, "{:.80}", sql);
        }
    }

    #[test]
    fn oversized_statements_and_lists_are_refused() {
        let long = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES));
        assert!(refused(&long).unwrap().starts_with("54000"));
        let list = format!("SELECT 1 IN ({})", vec!["1"; MAX_LIST_ITEMS + 1].join(","));
        assert!(refused(&list).unwrap().starts_with("54000"));
    }
}
