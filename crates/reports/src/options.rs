//! Report arguments: literal lists of steps and one options text, `'key=value; key=value'`.
//!
//! DataFusion's table functions take positional arguments only; a keyed options string keeps
//! calls readable (`'window=1 day; breakdown=platform'`) and lets reports grow options without
//! breaking calls. Unknown keys and bad values are errors that name the report and the key.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::common::{plan_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::fragment::{self, Origin};

#[derive(Debug)]
pub struct Options<'d> {
    report: &'static str,
    /// The session's SQL dialect: fragments are checked as the report's SQL will be parsed.
    dialect: &'d dyn Dialect,
    /// Whom the report counts when `by` is not given.
    default_by: By,
    values: BTreeMap<String, String>,
}

/// What a report call knows of its session when its SQL is written.
#[derive(Debug, Clone, Copy)]
pub struct Call<'d> {
    /// The session's SQL dialect.
    pub dialect: &'d dyn Dialect,
    /// Whom reports count by default: persons when the events hold identity links.
    pub default_by: By,
}

/// Whom a report counts (option `by`): each `user_id` as it is, or each person, whatever ids
/// the person used (`person_id`, docs/identity.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    #[default]
    User,
    Person,
}

/// A text literal argument.
pub fn text_arg(report: &str, expr: &Expr, what: &str) -> Result<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{report}: {what} must be a text literal, got {other}"),
    }
}

/// A list-of-text literal argument (`['a', 'b']`).
pub fn text_list_arg(report: &str, expr: &Expr, what: &str) -> Result<Vec<String>> {
    let wrong = || {
        plan_datafusion_err!(
            "{report}: {what} must be a list of text literals such as ['signup', 'purchase'], got {expr}"
        )
    };
    match expr {
        Expr::Literal(ScalarValue::List(list), _) => {
            let values = list.values();
            (0..values.len())
                .map(|i| match ScalarValue::try_from_array(values, i)? {
                    ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                        Ok(s)
                    }
                    _ => Err(wrong()),
                })
                .collect()
        }
        Expr::ScalarFunction(f) if f.name() == "make_array" => {
            f.args.iter().map(|a| text_arg(report, a, what)).collect()
        }
        _ => Err(wrong()),
    }
}

/// The options of a report that takes only an options text: checks the argument count
/// (`usage`, the arguments after the report's name, is shown when it is wrong) and parses the
/// keys `own` plus the source keys.
pub fn single_options_arg<'d>(
    report: &'static str,
    args: &[Expr],
    usage: &str,
    own: &[&'static str],
    call: &Call<'d>,
) -> Result<Options<'d>> {
    if args.len() > 1 {
        return plan_err!("{report} takes one options argument: {report}({usage})");
    }
    let text = args.first().map(|a| text_arg(report, a, "options")).transpose()?.unwrap_or_default();
    Options::parse(report, &text, &keys(own), call)
}

impl<'d> Options<'d> {
    /// Parses `text` and checks every key is one of `allowed`, given once.
    pub fn parse(report: &'static str, text: &str, allowed: &[&str], call: &Call<'d>) -> Result<Self> {
        let dialect = call.dialect;
        let mut values = BTreeMap::new();
        let origin = Origin { report, what: "options" };
        for part in fragment::split_top_level(origin, text, &Token::SemiColon, dialect)? {
            if part.is_empty() {
                continue;
            }
            // Keys are plain words, so the first `=` ends the key whatever the value holds.
            let Some((key, value)) = part.split_once('=') else {
                return plan_err!("{report}: option '{part}' must be key=value; options: {}", allowed.join(", "));
            };
            let key = key.trim().to_ascii_lowercase();
            if !allowed.contains(&key.as_str()) {
                return plan_err!("{report}: unknown option '{key}'; options: {}", allowed.join(", "));
            }
            if values.insert(key.clone(), value.trim().to_string()).is_some() {
                return plan_err!("{report}: option '{key}' is given more than once");
            }
        }
        Ok(Options { report, dialect, default_by: call.default_by, values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn origin<'w>(&self, what: &'w str) -> Origin<'w> {
        Origin { report: self.report, what }
    }

    /// One of `choices`, the first being the default.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<&'static str> {
        match self.get(key) {
            None => Ok(choices[0]),
            Some(v) => choices.iter().find(|c| c.eq_ignore_ascii_case(v)).copied().ok_or_else(|| {
                plan_datafusion_err!("{}: {key} must be one of {}, got '{v}'", self.report, choices.join(", "))
            }),
        }
    }

    pub fn count(&self, key: &str, default: u32, max: u32) -> Result<u32> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => plan_err!("{}: {key} must be a whole number from 1 to {max}, got '{v}'", self.report),
            },
        }
    }

    /// An interval such as `1 day`, `30 minutes`, checked by parsing it as DataFusion will.
    pub fn interval(&self, key: &str, default: &str) -> Result<String> {
        let v = self.get(key).unwrap_or(default);
        let ok = v.split_whitespace().count() == 2
            && v.split_whitespace().next().is_some_and(|n| n.parse::<f64>().is_ok_and(|n| n > 0.0))
            && ["second", "minute", "hour", "day", "week"].iter().any(|u| {
                v.to_ascii_lowercase().split_whitespace().nth(1).is_some_and(|w| w.trim_end_matches('s') == *u)
            });
        if !ok {
            return plan_err!(
                "{}: {key} must be an interval such as '1 day' or '30 minutes' (seconds to weeks), got '{v}'",
                self.report
            );
        }
        Ok(format!("INTERVAL '{v}'"))
    }

    /// An expression-valued option (`breakdown`, `hold`, `where`), checked and parenthesized.
    pub fn expression(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| fragment::expression(self.origin(key), v, self.dialect)).transpose()
    }

    /// An option naming an event or giving a condition (`start`, `event`, …), as a condition.
    pub fn event(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| self.condition(key, v)).transpose()
    }

    /// A comma-separated list of events or conditions (`exclude`), as conditions.
    pub fn events(&self, key: &str) -> Result<Vec<String>> {
        let Some(v) = self.get(key) else { return Ok(vec![]) };
        fragment::split_top_level(self.origin(key), v, &Token::Comma, self.dialect)?
            .into_iter()
            .map(|e| self.condition(key, e))
            .collect()
    }

    /// A step or event (`what` names it in errors): an event name becomes `event = 'name'`;
    /// anything with SQL operators, parentheses or quotes is a condition, which must be one
    /// SQL expression.
    pub fn condition(&self, what: &str, step: &str) -> Result<String> {
        let lower = step.to_ascii_lowercase();
        if step.contains(['=', '<', '>', '(', '\'']) || lower.contains(" like ") || lower.contains(" in ") {
            fragment::expression(self.origin(what), step, self.dialect)
        } else {
            Ok(format!("(event = {})", self.literal(what, step)?))
        }
    }

    /// `text` as an SQL string literal (event names, step names shown in results).
    pub fn literal(&self, what: &str, text: &str) -> Result<String> {
        fragment::string_literal(self.origin(what), text, self.dialect)
    }

    /// `text` (part of option `what`) as exactly one SQL expression, parenthesized.
    pub fn fragment(&self, what: &str, text: &str) -> Result<String> {
        fragment::expression(self.origin(what), text, self.dialect)
    }

    /// `text` (part of option `what`) split at top-level `separator`s (`,` or `;`).
    pub fn split<'t>(&self, what: &str, text: &'t str, separator: &Token) -> Result<Vec<&'t str>> {
        fragment::split_top_level(self.origin(what), text, separator, self.dialect)
    }

    /// A number in `range` (inclusive of its ends as the range says).
    pub fn number(
        &self,
        key: &str,
        default: f64,
        range: impl std::ops::RangeBounds<f64> + std::fmt::Debug,
    ) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<f64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => plan_err!("{}: {key} must be a number in {range:?}, got '{v}'", self.report),
            },
        }
    }

    fn date(&self, key: &str) -> Result<Option<NaiveDate>> {
        self.get(key)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| plan_datafusion_err!("{}: {key} must be a date YYYY-MM-DD, got '{v}'", self.report))
            })
            .transpose()
    }

    /// The rows a report reads: its table, date range and extra filter.
    pub fn source(&self) -> Result<Source> {
        let named = match self.get("table") {
            Some(t) => fragment::object_name(self.origin("table"), t, self.dialect)?,
            None => "events".to_string(),
        };
        let counted = self.counted()?;
        let mut table = named.clone();
        // The person's columns, joined only when an option names one (it costs a pass over
        // the events to derive `persons`).
        let person_columns = self.named_columns("person_", &northstar_identity::PERSON_COLUMNS);
        if !person_columns.is_empty() {
            let picked = person_columns.iter().map(|c| format!("p.{c} AS person_{c}")).collect::<Vec<_>>();
            table = format!(
                "(SELECT t.*, {} FROM {table} AS t LEFT JOIN persons AS p ON t.person_id = p.person_id)",
                picked.join(", ")
            );
        }
        // The account's columns (`groups`), where the report counts accounts.
        let group_columns = self.named_columns("group_", &northstar_identity::GROUP_COLUMNS);
        if let (Some(column), false) = (group_columns.first(), matches!(counted, Counted::Account(_))) {
            return plan_err!(
                "{}: group_{column} is the counted account's column: it needs by=<group type>, e.g. by=company",
                self.report
            );
        }
        // Counting persons or accounts: the rows as they are, with each user_id replaced by
        // its person or the event's account, so every report's SQL stays as it is.
        table = match counted {
            Counted::User if person_columns.is_empty() => return self.filtered(named),
            Counted::User => table,
            Counted::Person => format!("(SELECT * REPLACE (person_id AS user_id) FROM {table})"),
            Counted::Account(group_type) if group_columns.is_empty() => {
                northstar_identity::rows_by_account(&table, &group_type)
            }
            Counted::Account(group_type) => northstar_identity::rows_with_account_columns(
                &northstar_identity::rows_by_account(&table, &group_type),
                &group_type,
                &group_columns,
            ),
        };
        // Under the table's own name where it is one word, so `where=` may qualify it.
        let alias = if named.contains('.') || named.contains('"') { "report_rows" } else { named.as_str() };
        self.filtered(format!("{table} AS {alias}"))
    }

    /// The `columns` that some option names as `<prefix><column>`.
    fn named_columns(&self, prefix: &str, columns: &[&'static str]) -> Vec<&'static str> {
        columns.iter().copied().filter(|c| self.values.values().any(|v| mentions(v, &format!("{prefix}{c}")))).collect()
    }

    /// Whom the report counts: option `by`, else users with `table=`, else the session's default.
    fn counted(&self) -> Result<Counted> {
        Ok(match self.get("by") {
            None if self.get("table").is_some() => Counted::User,
            None => match self.default_by {
                By::User => Counted::User,
                By::Person => Counted::Person,
            },
            Some(v) if v.eq_ignore_ascii_case("user") => Counted::User,
            Some(v) if v.eq_ignore_ascii_case("person") => Counted::Person,
            Some(v) if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Counted::Account(v.to_ascii_lowercase())
            }
            Some(v) => {
                return plan_err!(
                    "{}: by must be user, person or a group type such as company (letters, digits, _), got '{v}'",
                    self.report
                )
            }
        })
    }

    /// The source over `table` with the date range and `where` applied.
    fn filtered(&self, table: String) -> Result<Source> {
        let (from, to) = (self.date("from")?, self.date("to")?);
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return plan_err!("{}: to ({t}) is before from ({f})", self.report);
            }
        }
        let extra = self.expression("where")?;
        let mut filters = vec![];
        if let Some(f) = from {
            filters.push(format!("event_time >= TIMESTAMP '{f} 00:00:00Z'"));
        }
        if let Some(t) = to {
            // `to` is the last day included.
            filters.push(format!("event_time < TIMESTAMP '{} 00:00:00Z'", t + chrono::Days::new(1)));
        }
        filters.extend(extra.clone());
        Ok(Source {
            table,
            filter: if filters.is_empty() { "TRUE".into() } else { filters.join(" AND ") },
            all_time: extra.unwrap_or_else(|| "TRUE".into()),
            from,
            to,
        })
    }
}

/// Whom a report counts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Counted {
    User,
    Person,
    /// Accounts of this group type (`by=company`).
    Account(String),
}

/// Whether the SQL text `text` holds the identifier `name` (not as part of a longer word).
fn mentions(text: &str, name: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    lower.match_indices(name).any(|(at, _)| !lower[..at].ends_with(word) && !lower[at + name.len()..].starts_with(word))
}

/// The input rows of a report.
#[derive(Debug)]
pub struct Source {
    pub table: String,
    /// Date range and `where`.
    pub filter: String,
    /// `where` only: for what a report must know from before the range (a user's first event).
    pub all_time: String,
    /// The range's first and last day.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl Source {
    pub fn cte(&self) -> String {
        format!("base AS (SELECT * FROM {} WHERE {})", self.table, self.filter)
    }
}

/// The options every report reads its rows with.
pub const SOURCE_KEYS: [&str; 5] = ["table", "from", "to", "where", "by"];

pub fn keys(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().copied().chain(SOURCE_KEYS).collect()
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    use super::*;

    const GENERIC: GenericDialect = GenericDialect {};

    fn parse(text: &str, own: &[&'static str]) -> Result<Options<'static>> {
        Options::parse("funnel", text, &keys(own), &Call { dialect: &GENERIC, default_by: By::User })
    }

    fn err<T: std::fmt::Debug>(result: Result<T>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn options_are_checked() {
        let o = parse("window=2 days; breakdown=platform", &["window", "breakdown"]).unwrap();
        assert_eq!(o.interval("window", "1 day").unwrap(), "INTERVAL '2 days'");
        assert!(err(parse("colour=red", &["window"])).contains("unknown option 'colour'; options: window, table"));
        assert!(err(parse("window", &["window"])).contains("option 'window' must be key=value"));
        let o = parse("window=soon", &["window"]).unwrap();
        assert!(err(o.interval("window", "1 day")).contains("window must be an interval"));
        let o = parse("from=2025-02-01; to=2025-01-01", &[]).unwrap();
        assert!(o.source().is_err());
    }

    #[test]
    fn an_option_given_twice_is_refused() {
        let e = err(parse("window=1 day; Window=2 days", &["window"]));
        assert!(e.contains("funnel: option 'window' is given more than once"), "{e}");
    }

    #[test]
    fn semicolons_and_escaped_quotes_inside_strings_belong_to_the_value() {
        let o = parse("where=event = 'a;b' OR event = 'it''s'; from=2025-01-01", &[]).unwrap();
        assert_eq!(o.get("where"), Some("event = 'a;b' OR event = 'it''s'"));
        assert_eq!(o.get("from"), Some("2025-01-01"));
        assert_eq!(
            o.source().unwrap().filter,
            "event_time >= TIMESTAMP '2025-01-01 00:00:00Z' AND (event = 'a;b' OR event = 'it''s')"
        );
        assert!(err(parse("where=event = 'a;b", &[])).contains("funnel: options: Unterminated string literal"));
    }

    #[test]
    fn a_where_that_closes_its_parenthesis_is_refused() {
        let o = parse("from=2025-01-01; where=1=1) OR (1=1", &[]).unwrap();
        let e = err(o.source());
        assert!(e.contains("funnel: where must be one SQL expression, got '1=1) OR (1=1'"), "{e}");
    }

    #[test]
    fn expression_options_are_one_expression() {
        let o = parse("breakdown=json_get_str(properties, 'plan'); hold=a, b", &["breakdown", "hold"]).unwrap();
        assert_eq!(o.expression("breakdown").unwrap().unwrap(), "(json_get_str(properties, 'plan'))");
        assert!(err(o.expression("hold")).contains("funnel: hold must be one SQL expression, got 'a, b'"));
        assert_eq!(o.expression("window").unwrap(), None);
    }

    #[test]
    fn the_table_is_one_name() {
        assert_eq!(parse("table=\"my events\"", &[]).unwrap().source().unwrap().table, "\"my events\"");
        let e = err(parse("table=events e JOIN x", &[]).unwrap().source());
        assert!(e.contains("funnel: table must be a table or view name"), "{e}");
    }

    #[test]
    fn steps_are_event_names_or_conditions() {
        let o = parse("", &[]).unwrap();
        assert_eq!(o.condition("step 1", "purchase").unwrap(), "(event = 'purchase')");
        assert_eq!(o.condition("step 1", "Sign Up").unwrap(), "(event = 'Sign Up')");
        assert_eq!(o.condition("step 1", r"C:\temp").unwrap(), r"(event = 'C:\temp')");
        assert_eq!(
            o.condition("step 1", "event = 'purchase' AND platform = 'ios'").unwrap(),
            "(event = 'purchase' AND platform = 'ios')"
        );
        assert!(
            err(o.condition("step 2", "event = 'a') OR (TRUE")).contains("funnel: step 2 must be one SQL expression")
        );
    }

    #[test]
    fn lists_of_events_split_at_top_level_commas() {
        let o = parse("exclude=refund, event IN ('a', 'b'), x = 'c,d'", &["exclude"]).unwrap();
        assert_eq!(o.events("exclude").unwrap(), ["(event = 'refund')", "(event IN ('a', 'b'))", "(x = 'c,d')"]);
    }
}
