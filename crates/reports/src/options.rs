//! Report arguments: literal lists of steps and one options text, `'key=value; key=value'`.
//!
//! DataFusion's table functions take positional arguments only; a keyed options string keeps
//! calls readable (`'window=1 day; breakdown=platform'`) and lets reports grow options without
//! breaking calls. Unknown keys and bad values are errors that name the report and the key.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::common::{plan_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::Expr;

#[derive(Debug, Default)]
pub struct Options {
    report: &'static str,
    values: BTreeMap<String, String>,
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
/// (`usage` is shown when it is wrong) and parses the keys `own` plus the source keys.
pub fn single_options_arg(report: &'static str, args: &[Expr], usage: &str, own: &[&'static str]) -> Result<Options> {
    if args.len() > 1 {
        return plan_err!("{report} takes one options argument: {usage}");
    }
    let text = args.first().map(|a| text_arg(report, a, "options")).transpose()?.unwrap_or_default();
    Options::parse(report, &text, &keys(own))
}

impl Options {
    /// Parses `text` and checks every key is one of `allowed`.
    pub fn parse(report: &'static str, text: &str, allowed: &[&str]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return plan_err!("{report}: option '{part}' must be key=value; options: {}", allowed.join(", "));
            };
            let key = key.trim().to_ascii_lowercase();
            if !allowed.contains(&key.as_str()) {
                return plan_err!("{report}: unknown option '{key}'; options: {}", allowed.join(", "));
            }
            values.insert(key, value.trim().to_string());
        }
        Ok(Options { report, values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
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

    /// The rows a report reads: its table, date range and extra filter.
    pub fn source(&self) -> Result<Source> {
        let table = self.get("table").unwrap_or("events").to_string();
        if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return plan_err!("{}: table must be a table or view name, got '{table}'", self.report);
        }
        let date = |key: &str| -> Result<Option<NaiveDate>> {
            self.get(key)
                .map(|v| {
                    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                        plan_datafusion_err!("{}: {key} must be a date YYYY-MM-DD, got '{v}'", self.report)
                    })
                })
                .transpose()
        };
        let (from, to) = (date("from")?, date("to")?);
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return plan_err!("{}: to ({t}) is before from ({f})", self.report);
            }
        }
        let mut filters = vec![];
        let all_time = self.get("where").map(|w| format!("({w})")).unwrap_or_else(|| "TRUE".into());
        if let Some(f) = from {
            filters.push(format!("event_time >= TIMESTAMP '{f} 00:00:00Z'"));
        }
        if let Some(t) = to {
            // `to` is the last day included.
            filters.push(format!("event_time < TIMESTAMP '{} 00:00:00Z'", t + chrono::Days::new(1)));
        }
        if let Some(w) = self.get("where") {
            filters.push(format!("({w})"));
        }
        Ok(Source { table, filter: if filters.is_empty() { "TRUE".into() } else { filters.join(" AND ") }, all_time })
    }
}

/// The input rows of a report.
pub struct Source {
    pub table: String,
    /// Date range and `where`.
    pub filter: String,
    /// `where` only: for what a report must know from before the range (a user's first event).
    pub all_time: String,
}

impl Source {
    pub fn cte(&self) -> String {
        format!("base AS (SELECT * FROM {} WHERE {})", self.table, self.filter)
    }
}

/// An event name becomes `event = 'name'`; anything with SQL operators, parentheses or quotes
/// is taken as a condition as written.
pub fn condition(step: &str) -> String {
    if step.contains(['=', '<', '>', '(', '\''])
        || step.to_ascii_lowercase().contains(" like ")
        || step.to_ascii_lowercase().contains(" in ")
    {
        format!("({step})")
    } else {
        format!("(event = '{}')", step.replace('\'', "''"))
    }
}

/// The options every report reads its rows with.
pub const SOURCE_KEYS: [&str; 4] = ["table", "from", "to", "where"];

pub fn keys(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().copied().chain(SOURCE_KEYS).collect()
}

/// `'x'` quoting for text shown in results.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let o = Options::parse("funnel", "window=2 days; breakdown=platform", &keys(&["window", "breakdown"])).unwrap();
        assert_eq!(o.interval("window", "1 day").unwrap(), "INTERVAL '2 days'");
        assert!(Options::parse("funnel", "colour=red", &keys(&["window"]))
            .unwrap_err()
            .to_string()
            .contains("unknown option 'colour'"));
        let o = Options::parse("funnel", "window=soon", &keys(&["window"])).unwrap();
        assert!(o.interval("window", "1 day").unwrap_err().to_string().contains("window must be an interval"));
        let o = Options::parse("funnel", "from=2025-02-01; to=2025-01-01", &keys(&[])).unwrap();
        assert!(o.source().is_err());
    }

    #[test]
    fn steps_are_event_names_or_conditions() {
        assert_eq!(condition("purchase"), "(event = 'purchase')");
        assert_eq!(condition("Sign Up"), "(event = 'Sign Up')");
        assert_eq!(condition("event = 'purchase' AND platform = 'ios'"), "(event = 'purchase' AND platform = 'ios')");
    }
}
