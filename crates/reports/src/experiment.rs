//! `experiment(metrics, options)`: an A/B test's result per (metric, variant) against control —
//! lift, confidence interval, p-value, chance to win, expected loss, sample-ratio mismatch.
//!
//! ```sql
//! SELECT metric, variant, users, value, relative_lift, ci_low, ci_high, p_value, chance_to_win
//! FROM experiment(['conversion: purchase', 'count: purchase', 'sum: json_get_float(properties, ''price''); event=purchase'],
//!                 'flag=checkout-redesign; window=7 days; cuped=on');
//! ```
//!
//! The SQL reduces the events to sums per variant (each exposed user's metric values after
//! their first exposure, and before it for CUPED); the statistics are computed from those sums
//! by `northstar-stats` in the report's last step ([`crate::finish`]). Definitions, formulas
//! and defaults: docs/experiments.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_datafusion_err, plan_err, Result};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::Token;
use northstar_stats::{adjust, compare, control_row, srm_p_value, Comparison, Correction, Kind, Settings, Sums};

use crate::options::{keys, text_arg, text_list_arg, Options, Source};
use crate::table::{After, Check, ReportSql, Want};
use crate::Report;

#[derive(Debug)]
pub struct Experiment;

const OWN_KEYS: [&str; 14] = [
    "exposure",
    "flag",
    "variant",
    "control",
    "variants",
    "weights",
    "multiple",
    "window",
    "alpha",
    "cuped",
    "cuped_days",
    "sequential",
    "sequential_n",
    "correction",
];

/// The variant row that counts users seen in more than one variant (`multiple=exclude`).
pub const MULTIPLE: &str = "$multiple";

/// What a metric measures per exposed user, as SQL over the joined events `e`.
#[derive(Debug, Clone)]
enum Measure {
    /// Reaching the last of these steps (conditions), in order, `window_funnel` semantics.
    Conversion(Vec<String>),
    /// Events matching the condition.
    Count(String),
    /// A numeric expression summed over the events matching `event`, optionally capped at
    /// the `winsorize` quantile of users' values.
    Sum { value: String, event: String, winsorize: Option<f64> },
    /// Σ numerator / Σ denominator over users.
    Ratio { numerator: String, event: String, denominator: String, denominator_event: String },
}

#[derive(Debug, Clone)]
struct Metric {
    name: String,
    measure: Measure,
}

impl Metric {
    fn kind(&self) -> Kind {
        match self.measure {
            Measure::Conversion(_) => Kind::Conversion,
            Measure::Count(_) | Measure::Sum { .. } => Kind::Mean,
            Measure::Ratio { .. } => Kind::Ratio,
        }
    }
}

/// `'kind: body; key=value; …'`, e.g. `'sum: json_get_float(properties, ''price''); event=purchase'`.
fn parse_metric(o: &Options, number: usize, text: &str) -> Result<Metric> {
    let what = format!("metric {number}");
    let parts = o.split(&what, text, &Token::SemiColon)?;
    let usage = "conversion: step, step, … | count: event | sum: expression; event=… | ratio: expression; denominator=expression";
    let Some((kind, body)) = parts[0].split_once(':') else {
        return plan_err!("experiment: {what} must start with its kind ({usage}), got '{text}'");
    };
    let (kind, body) = (kind.trim().to_ascii_lowercase(), body.trim());
    if body.is_empty() {
        return plan_err!("experiment: {what} ({kind}) has nothing after '{kind}:'");
    }
    let mut sub = BTreeMap::new();
    for part in parts[1..].iter().filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return plan_err!("experiment: {what}: '{part}' must be key=value");
        };
        let key = key.trim().to_ascii_lowercase();
        let allowed: &[&str] = match kind.as_str() {
            "sum" => &["name", "event", "winsorize"],
            "ratio" => &["name", "event", "denominator", "denominator_event"],
            _ => &["name"],
        };
        if !allowed.contains(&key.as_str()) {
            return plan_err!("experiment: {what} ({kind}): unknown setting '{key}'; settings: {}", allowed.join(", "));
        }
        sub.insert(key, value.trim().to_string());
    }
    let event = |key: &str| -> Result<String> {
        match sub.get(key) {
            Some(e) => o.condition(&format!("{what} {key}"), e),
            None => Ok("TRUE".into()),
        }
    };
    let measure = match kind.as_str() {
        "conversion" => {
            let steps = o.split(&what, body, &Token::Comma)?;
            if !(1..=32).contains(&steps.len()) {
                return plan_err!("experiment: {what}: 1 to 32 steps, got {}", steps.len());
            }
            let steps = steps
                .iter()
                .enumerate()
                .map(|(i, s)| o.condition(&format!("{what} step {}", i + 1), s))
                .collect::<Result<Vec<_>>>()?;
            Measure::Conversion(steps)
        }
        "count" => Measure::Count(o.condition(&what, body)?),
        "sum" => {
            let winsorize = match sub.get("winsorize") {
                None => None,
                Some(v) => match v.parse::<f64>() {
                    Ok(q) if q > 0.0 && q < 1.0 => Some(q),
                    _ => {
                        return plan_err!(
                            "experiment: {what}: winsorize must be a quantile between 0 and 1 such as 0.99, got '{v}'"
                        )
                    }
                },
            };
            Measure::Sum { value: o.fragment(&what, body)?, event: event("event")?, winsorize }
        }
        "ratio" => {
            let Some(denominator) = sub.get("denominator") else {
                return plan_err!("experiment: {what} (ratio) needs denominator=expression (e.g. denominator=1; denominator_event=purchase)");
            };
            Measure::Ratio {
                numerator: o.fragment(&what, body)?,
                event: event("event")?,
                denominator: o.fragment(&format!("{what} denominator"), denominator)?,
                denominator_event: event("denominator_event")?,
            }
        }
        other => return plan_err!("experiment: {what}: unknown kind '{other}'; kinds: {usage}"),
    };
    let name = sub.get("name").cloned().unwrap_or_else(|| text.trim().to_string());
    Ok(Metric { name, measure })
}

/// Everything the finishing step needs besides the SQL's rows.
#[derive(Debug, Clone)]
struct Plan {
    metrics: Vec<(String, Kind)>,
    control: String,
    variants: Option<Vec<String>>,
    weights: Option<Vec<f64>>,
    settings: Settings,
    correction: Correction,
    exclude_multiple: bool,
}

impl Report for Experiment {
    fn name(&self) -> &'static str {
        "experiment"
    }

    fn build(&self, args: &[Expr], dialect: &dyn Dialect) -> Result<ReportSql> {
        let report = self.name();
        let usage = "['conversion: purchase', 'count: purchase', 'sum: expression; event=purchase', 'ratio: expression; denominator=expression'], 'flag=name; control=control; window=7 days; cuped=on; from=YYYY-MM-DD; to=YYYY-MM-DD'";
        if args.is_empty() || args.len() > 2 {
            return plan_err!("{report} takes 1 or 2 arguments: {report}({usage})");
        }
        let texts = text_list_arg(report, &args[0], "metrics")?;
        if !(1..=20).contains(&texts.len()) {
            return plan_err!("{report}: 1 to 20 metrics, got {}: {report}({usage})", texts.len());
        }
        let options_text = args.get(1).map(|a| text_arg(report, a, "options")).transpose()?.unwrap_or_default();
        let o = Options::parse(report, &options_text, &keys(&OWN_KEYS), dialect)?;
        let metrics = texts.iter().enumerate().map(|(i, t)| parse_metric(&o, i + 1, t)).collect::<Result<Vec<_>>>()?;
        let plan = plan_options(&o, &metrics)?;
        let source = o.source()?;
        let sql = sql(&o, &source, &metrics, &plan)?;
        let checks = checks(&o, &source, &metrics)?;
        let schema = schema();
        let finish_schema = schema.clone();
        let finish = Arc::new(move |rows: &[RecordBatch]| finish(&plan, rows, finish_schema.clone()));
        Ok(ReportSql { sql, schema, after: Some(After { finish, checks }) })
    }
}

fn plan_options(o: &Options, metrics: &[Metric]) -> Result<Plan> {
    let control = o.get("control").unwrap_or("control").to_string();
    let variants = o.get("variants").map(|v| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>());
    if let Some(vs) = &variants {
        if !vs.contains(&control) || vs.len() < 2 || vs.iter().any(String::is_empty) {
            return plan_err!(
                "experiment: variants must list two or more variant names including the control '{control}', got '{}'",
                vs.join(",")
            );
        }
    }
    let weights = match o.get("weights") {
        None => None,
        Some(w) => {
            let Some(vs) = &variants else {
                return plan_err!("experiment: weights needs variants (the names the weights are in the order of)");
            };
            let parsed: Vec<f64> =
                w.split(',').map(|x| x.trim().parse::<f64>()).collect::<std::result::Result<_, _>>().map_err(|_| {
                    plan_datafusion_err!("experiment: weights must be positive numbers separated by commas, got '{w}'")
                })?;
            if parsed.len() != vs.len() || parsed.iter().any(|x| !(*x > 0.0 && x.is_finite())) {
                return plan_err!(
                    "experiment: weights must be {} positive numbers (one per variant), got '{w}'",
                    vs.len()
                );
            }
            Some(parsed)
        }
    };
    let sequential = match o.choice("sequential", &["off", "on"])? {
        "on" => Some(o.number("sequential_n", 5000.0, 1.0..=1e12)?),
        _ => None,
    };
    let settings = Settings {
        alpha: o.number("alpha", 0.05, 1e-10..=0.5)?,
        cuped: o.choice("cuped", &["off", "on"])? == "on",
        sequential,
    };
    if settings.cuped && metrics.iter().all(|m| m.kind() == Kind::Ratio) {
        return plan_err!("experiment: cuped applies to conversion, count and sum metrics, not ratios");
    }
    let correction = match o.choice("correction", &["none", "holm", "bh"])? {
        "holm" => Correction::Holm,
        "bh" => Correction::BenjaminiHochberg,
        _ => Correction::None,
    };
    Ok(Plan {
        metrics: metrics.iter().map(|m| (m.name.clone(), m.kind())).collect(),
        control,
        variants,
        weights,
        settings,
        correction,
        exclude_multiple: o.choice("multiple", &["exclude", "first"])? == "exclude",
    })
}

/// The exposure condition and the variant expression as the user wrote it (not yet cast).
fn exposure_and_variant(o: &Options) -> Result<(String, String)> {
    let mut exposure = o.event("exposure")?.unwrap_or_else(|| "(event = '$feature_flag_called')".into());
    if let Some(flag) = o.get("flag") {
        exposure = format!("{exposure} AND json_get_str(properties, '$feature_flag') = {}", o.literal("flag", flag)?);
    }
    let variant =
        o.expression("variant")?.unwrap_or_else(|| "(json_get_str(properties, '$feature_flag_response'))".into());
    Ok((exposure, variant))
}

fn checks(o: &Options, source: &Source, metrics: &[Metric]) -> Result<Vec<Check>> {
    let (exposure, variant) = exposure_and_variant(o)?;
    let mut checks = vec![];
    let mut add = |what: String, expression: &str, want: Want| {
        checks.push(Check { what, sql: format!("SELECT {expression} FROM {} LIMIT 0", source.table), want })
    };
    add("exposure".into(), &exposure, Want::Boolean);
    add("variant".into(), &variant, Want::Any);
    for (i, m) in metrics.iter().enumerate() {
        let what = format!("metric {}", i + 1);
        match &m.measure {
            Measure::Conversion(steps) => {
                for (j, s) in steps.iter().enumerate() {
                    add(format!("{what} step {}", j + 1), s, Want::Boolean);
                }
            }
            Measure::Count(c) => add(what, c, Want::Boolean),
            Measure::Sum { value, event, .. } => {
                add(what.clone(), value, Want::Number);
                add(format!("{what} event"), event, Want::Boolean);
            }
            Measure::Ratio { numerator, event, denominator, denominator_event } => {
                add(what.clone(), numerator, Want::Number);
                add(format!("{what} event"), event, Want::Boolean);
                add(format!("{what} denominator"), denominator, Want::Number);
                add(format!("{what} denominator_event"), denominator_event, Want::Boolean);
            }
        }
    }
    Ok(checks)
}

fn sql(o: &Options, source: &Source, metrics: &[Metric], plan: &Plan) -> Result<String> {
    let (exposure, variant) = exposure_and_variant(o)?;
    let variant = format!("CAST({variant} AS TEXT)");
    let window = match o.get("window") {
        Some(_) => Some(o.interval("window", "1 day")?),
        None => None,
    };
    let cuped_days = o.count("cuped_days", 14, 3650)?;
    let post = match &window {
        Some(w) => format!("e.event_time >= a.exposed_at AND e.event_time <= a.exposed_at + {w}"),
        None => "e.event_time >= a.exposed_at".into(),
    };
    let pre = format!("e.event_time >= a.exposed_at - INTERVAL '{cuped_days} days' AND e.event_time < a.exposed_at");
    // The funnel's own window: the experiment's, or longer than any data.
    let funnel_window = window.clone().unwrap_or_else(|| "INTERVAL '1000000 days'".into());
    let cuped = plan.settings.cuped;
    let mut columns = vec![];
    for (i, m) in metrics.iter().enumerate() {
        let cuped = cuped && m.kind() != Kind::Ratio;
        let (value, second) = match &m.measure {
            Measure::Conversion(steps) => {
                let funnel = |when: &str| {
                    let conds = steps.iter().map(|s| format!("{when} AND {s}")).collect::<Vec<_>>().join(", ");
                    format!("CAST(CASE WHEN window_funnel({funnel_window}, e.event_time, {conds}) >= {} THEN 1 ELSE 0 END AS DOUBLE)", steps.len())
                };
                (funnel(&post), cuped.then(|| funnel(&pre)))
            }
            Measure::Count(c) => {
                let count = |when: &str| format!("CAST(count(*) FILTER (WHERE {when} AND {c}) AS DOUBLE)");
                (count(&post), cuped.then(|| count(&pre)))
            }
            Measure::Sum { value, event, .. } => {
                let sum = |when: &str| {
                    format!("coalesce(sum(CAST({value} AS DOUBLE)) FILTER (WHERE {when} AND {event}), 0.0)")
                };
                (sum(&post), cuped.then(|| sum(&pre)))
            }
            Measure::Ratio { numerator, event, denominator, denominator_event } => (
                format!("coalesce(sum(CAST({numerator} AS DOUBLE)) FILTER (WHERE {post} AND {event}), 0.0)"),
                Some(format!(
                    "coalesce(sum(CAST({denominator} AS DOUBLE)) FILTER (WHERE {post} AND {denominator_event}), 0.0)"
                )),
            ),
        };
        columns.push(format!("{value} AS m{i}"));
        columns.push(format!("{} AS d{i}", second.unwrap_or_else(|| "CAST(0.0 AS DOUBLE)".into())));
    }
    let mut ctes = vec![format!(
        "exposures AS (SELECT user_id, min(event_time) AS exposed_at, first_value({variant} ORDER BY event_time) AS variant, \
         count(DISTINCT {variant}) AS variants FROM {table} WHERE {range} AND {exposure} AND {variant} IS NOT NULL GROUP BY user_id)",
        table = source.table,
        range = source.filter,
    )];
    let assigned = if plan.exclude_multiple { "CASE WHEN variants > 1 THEN NULL ELSE variant END" } else { "variant" };
    ctes.push(format!("assigned AS (SELECT user_id, exposed_at, {assigned} AS variant FROM exposures)"));
    // Metric events: the `where` rows up to the range's end, from its start (less the CUPED
    // period, which may lie before it).
    let mut bounds = vec![source.all_time.clone()];
    if let Some(from) = source.from {
        let back = if cuped { format!(" - INTERVAL '{cuped_days} days'") } else { String::new() };
        bounds.push(format!("event_time >= TIMESTAMP '{from} 00:00:00Z'{back}"));
    }
    if let Some(to) = source.to {
        bounds.push(format!("event_time < TIMESTAMP '{} 00:00:00Z'", to + chrono::Days::new(1)));
    }
    ctes.push(format!(
        "per_user AS (SELECT a.variant, {} FROM assigned a JOIN (SELECT * FROM {} WHERE {}) e ON e.user_id = a.user_id \
         WHERE a.variant IS NOT NULL GROUP BY a.user_id, a.variant)",
        columns.join(", "),
        source.table,
        bounds.join(" AND ")
    ));
    // Winsorized sums: each user's value capped at the quantile of all exposed users' values.
    let capped = metrics
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m.measure {
            Measure::Sum { winsorize: Some(q), .. } => Some((i, q)),
            _ => None,
        })
        .collect::<Vec<_>>();
    let values = if capped.is_empty() {
        "per_user"
    } else {
        // The exact linear-interpolation quantile (numpy's default, which GrowthBook caps
        // with): DataFusion's `percentile_cont` rounds the interpolation fraction to 6 digits.
        let sorted = capped
            .iter()
            .map(|(i, _)| format!("array_sort(array_agg(m{i})) AS s_m{i}, array_sort(array_agg(d{i})) AS s_d{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        ctes.push(format!("sorted AS (SELECT CAST(count(*) AS DOUBLE) AS users, {sorted} FROM per_user)"));
        let quantile = |column: &str, q: f64| {
            let position = format!("({q} * (users - 1))");
            let (low, high) = (
                format!("{column}[CAST(floor({position}) AS BIGINT) + 1]"),
                format!("{column}[CAST(ceil({position}) AS BIGINT) + 1]"),
            );
            format!("{low} + ({position} - floor({position})) * ({high} - {low})")
        };
        let caps = capped
            .iter()
            .map(|(i, q)| {
                format!(
                    "{} AS cap_m{i}, {} AS cap_d{i}",
                    quantile(&format!("s_m{i}"), *q),
                    quantile(&format!("s_d{i}"), *q)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        ctes.push(format!("caps AS (SELECT {caps} FROM sorted)"));
        let projected = (0..metrics.len())
            .map(|i| match capped.iter().find(|(c, _)| *c == i) {
                Some(_) => format!("least(m{i}, cap_m{i}) AS m{i}, least(d{i}, cap_d{i}) AS d{i}"),
                None => format!("m{i}, d{i}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        ctes.push(format!("capped AS (SELECT variant, {projected} FROM per_user CROSS JOIN caps)"));
        "capped"
    };
    let sums = (0..metrics.len())
        .map(|i| {
            format!(
                "CAST(sum(m{i}) AS DOUBLE), CAST(sum(m{i} * m{i}) AS DOUBLE), CAST(sum(d{i}) AS DOUBLE), \
                 CAST(sum(d{i} * d{i}) AS DOUBLE), CAST(sum(m{i} * d{i}) AS DOUBLE)"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let zeros = vec!["CAST(0.0 AS DOUBLE)"; 5 * metrics.len()].join(", ");
    Ok(format!(
        "WITH {} SELECT variant, CAST(count(*) AS DOUBLE) AS users, {sums} FROM {values} GROUP BY variant \
         UNION ALL SELECT CAST(NULL AS TEXT), CAST(count(*) AS DOUBLE), {zeros} FROM assigned WHERE variant IS NULL",
        ctes.join(",\n")
    ))
}

fn schema() -> SchemaRef {
    let f = |name: &str, t: DataType| Field::new(name, t, true);
    Arc::new(Schema::new(vec![
        f("metric", DataType::Utf8),
        f("variant", DataType::Utf8),
        f("users", DataType::Int64),
        f("value", DataType::Float64),
        f("absolute_lift", DataType::Float64),
        f("relative_lift", DataType::Float64),
        f("ci_low", DataType::Float64),
        f("ci_high", DataType::Float64),
        f("p_value", DataType::Float64),
        f("adjusted_p_value", DataType::Float64),
        f("significant", DataType::Boolean),
        f("chance_to_win", DataType::Float64),
        f("credible_low", DataType::Float64),
        f("credible_high", DataType::Float64),
        f("expected_loss", DataType::Float64),
        f("srm_p_value", DataType::Float64),
        f("sample_ratio_mismatch", DataType::Boolean),
        f("note", DataType::Utf8),
    ]))
}

/// The SQL's rows: variant (NULL for users in several), users, then five sums per metric.
fn read_rows(rows: &[RecordBatch], metrics: usize) -> Result<(BTreeMap<String, Vec<Sums>>, f64)> {
    let mut arms = BTreeMap::new();
    let mut multiple = 0.0;
    for batch in rows {
        let variant = cast(batch.column(0), &DataType::Utf8)?;
        let variant = variant.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let number = |c: usize, r: usize| -> f64 {
            let a = batch.column(c).as_any().downcast_ref::<Float64Array>().expect("DOUBLE sums");
            if a.is_null(r) {
                0.0
            } else {
                a.value(r)
            }
        };
        for r in 0..batch.num_rows() {
            let n = number(1, r);
            if variant.is_null(r) {
                multiple += n;
                continue;
            }
            let sums = (0..metrics)
                .map(|i| {
                    let c = 2 + 5 * i;
                    Sums {
                        n,
                        m: number(c, r),
                        m2: number(c + 1, r),
                        d: number(c + 2, r),
                        d2: number(c + 3, r),
                        md: number(c + 4, r),
                    }
                })
                .collect();
            arms.insert(variant.value(r).to_string(), sums);
        }
    }
    Ok((arms, multiple))
}

fn finish(plan: &Plan, rows: &[RecordBatch], schema: SchemaRef) -> Result<RecordBatch> {
    let (arms, multiple) = read_rows(rows, plan.metrics.len())?;
    // Control first, then the listed variants, or those seen, by name; listed ones nobody saw
    // have 0 users (and so show in the sample-ratio check).
    let mut order = vec![plan.control.clone()];
    match &plan.variants {
        Some(listed) => order.extend(listed.iter().filter(|v| **v != plan.control).cloned()),
        None => order.extend(arms.keys().filter(|v| **v != plan.control).cloned()),
    }
    let unlisted: Vec<String> = arms.keys().filter(|v| !order.contains(v)).cloned().collect();
    let empty = vec![Sums::default(); plan.metrics.len()];
    let sums_of = |v: &str| arms.get(v).unwrap_or(&empty);
    let weights = plan.weights.clone().unwrap_or_else(|| vec![1.0; order.len()]);
    let users: Vec<f64> = order.iter().map(|v| sums_of(v).first().map_or(0.0, |s| s.n)).collect();
    let srm = srm_p_value(&users, &weights);

    let mut out: Vec<(String, String, Comparison)> = vec![];
    for (i, (name, kind)) in plan.metrics.iter().enumerate() {
        let control = sums_of(&plan.control)[i];
        out.push((name.clone(), plan.control.clone(), control_row(*kind, &control)));
        for v in order.iter().skip(1).chain(&unlisted) {
            let mut row = compare(*kind, &control, &sums_of(v)[i], &plan.settings);
            if unlisted.contains(v) {
                row.note = Some("not in variants: left out of the sample-ratio check");
            }
            out.push((name.clone(), v.clone(), row));
        }
        if plan.exclude_multiple {
            let row = Comparison {
                users: multiple,
                value: f64::NAN,
                note: Some("users exposed to more than one variant, left out"),
                ..Comparison::default()
            };
            out.push((name.clone(), MULTIPLE.into(), row));
        }
    }
    let adjusted = adjust(&out.iter().map(|(_, _, c)| c.p_value).collect::<Vec<_>>(), plan.correction);
    let alpha = plan.settings.alpha;
    let num = |v: Option<f64>| v.filter(|x| x.is_finite());
    let column = |f: &dyn Fn(usize, &Comparison) -> Option<f64>| -> ArrayRef {
        Arc::new(out.iter().enumerate().map(|(i, (_, _, c))| num(f(i, c))).collect::<Float64Array>())
    };
    let is_arm = |v: &str| v != MULTIPLE;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(out.iter().map(|(m, _, _)| Some(m.as_str())).collect::<StringArray>()),
        Arc::new(out.iter().map(|(_, v, _)| Some(v.as_str())).collect::<StringArray>()),
        Arc::new(out.iter().map(|(_, _, c)| Some(c.users as i64)).collect::<Int64Array>()),
        column(&|_, c| Some(c.value)),
        column(&|_, c| c.absolute_lift),
        column(&|_, c| c.relative_lift),
        column(&|_, c| c.ci.map(|x| x[0])),
        column(&|_, c| c.ci.map(|x| x[1])),
        column(&|_, c| c.p_value),
        column(&|i, _| adjusted[i]),
        Arc::new(adjusted.iter().map(|p| p.map(|p| p < alpha)).collect::<BooleanArray>()),
        column(&|_, c| c.chance_to_win),
        column(&|_, c| c.credible.map(|x| x[0])),
        column(&|_, c| c.credible.map(|x| x[1])),
        column(&|_, c| c.expected_loss),
        Arc::new(out.iter().map(|(_, v, _)| srm.filter(|_| is_arm(v))).collect::<Float64Array>()),
        Arc::new(
            out.iter()
                .map(|(_, v, _)| srm.filter(|_| is_arm(v)).map(|p| p < northstar_stats::SRM_THRESHOLD))
                .collect::<BooleanArray>(),
        ),
        Arc::new(out.iter().map(|(_, _, c)| c.note).collect::<StringArray>()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
