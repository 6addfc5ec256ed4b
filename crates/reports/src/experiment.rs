//! `experiment(metrics, options)`: an A/B test's result per (metric, variant) against control —
//! lift, confidence interval, p-value, chance to win, expected loss, sample-ratio mismatch.
//!
//! ```sql
//! SELECT metric, variant, users, value, relative_lift, ci_low, ci_high, p_value, chance_to_win
//! FROM experiment(['conversion: purchase', 'count: purchase', 'sum: json_get_float(properties, ''price''); event=purchase'],
//!                 'flag=checkout-redesign; window=7 days; cuped=on');
//! ```
//!
//! The SQL reduces the events to sums per variant: `experiment_user`, grouped by user, reads
//! each user's events once for their first exposure and their metric values after it (and
//! before it, for CUPED); the statistics are computed from those sums by `northstar-stats` in
//! the report's last step ([`crate::finish`]). Definitions, formulas
//! and defaults: docs/experiments.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::options::Call;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_datafusion_err, plan_err, Result};
use datafusion::logical_expr::Expr;
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

/// What a metric measures per exposed user, as SQL conditions and values over the events.
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
    /// Per metric, the quantile its users' values are capped at.
    winsorize: Vec<Option<f64>>,
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

    fn build(&self, args: &[Expr], call: &Call<'_>) -> Result<ReportSql> {
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
        let o = Options::parse(report, &options_text, &keys(&OWN_KEYS), call)?;
        let metrics = texts.iter().enumerate().map(|(i, t)| parse_metric(&o, i + 1, t)).collect::<Result<Vec<_>>>()?;
        let plan = plan_options(&o, &metrics)?;
        let source = o.source()?;
        let sql = sql(&o, &source, &metrics, &plan)?;
        let checks = checks(&o, &source, &metrics)?;
        let schema = schema();
        let finish_schema = schema.clone();
        let finish = Arc::new(move |rows: &[RecordBatch]| finish(&plan, rows, finish_schema.clone()));
        Ok(ReportSql { sql, schema, after: Some(After { finish, checks, stands_for: None }) })
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
        winsorize: metrics
            .iter()
            .map(|m| match m.measure {
                Measure::Sum { winsorize, .. } => winsorize,
                _ => None,
            })
            .collect(),
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
    let window = match o.get("window") {
        Some(_) => o.interval("window", "1 day")?,
        None => "NULL".into(),
    };
    let cuped_days = o.count("cuped_days", 14, 3650)?;
    let cuped = plan.settings.cuped;
    let cuped_period = if cuped { format!("INTERVAL '{cuped_days} days'") } else { "NULL".into() };
    // `experiment_user` reads each user's events once: exposure, then every metric relative
    // to it (crates/functions/src/experiment_user.rs). A sum's or ratio's NULL does not count.
    let number = |value: &str, event: &str| format!("CASE WHEN {event} THEN CAST({value} AS DOUBLE) END");
    let (mut layout, mut arguments) = (vec![], vec![]);
    for m in metrics {
        match &m.measure {
            Measure::Conversion(steps) => {
                layout.push(format!("conversion {}", steps.len()));
                arguments.extend(steps.iter().cloned());
            }
            Measure::Count(condition) => {
                layout.push("count".into());
                arguments.push(condition.clone());
            }
            Measure::Sum { value, event, .. } => {
                layout.push("sum".into());
                arguments.push(number(value, event));
            }
            Measure::Ratio { numerator, event, denominator, denominator_event } => {
                layout.push("ratio".into());
                arguments.push(number(numerator, event));
                arguments.push(number(denominator, denominator_event));
            }
        }
    }
    let exposure_variant =
        format!("CASE WHEN {range} AND {exposure} THEN CAST({variant} AS TEXT) END", range = source.filter);
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
    let assigned =
        if plan.exclude_multiple { "CASE WHEN u['multiple'] THEN NULL ELSE u['variant'] END" } else { "u['variant']" };
    let values = (0..metrics.len())
        .map(|i| format!("u['values'][{}] AS m{i}, u['values'][{}] AS d{i}", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    // Per variant (NULL: users in several): the sums the statistics need, or for a winsorized
    // metric its users' values, capped in the finishing step (the cap is a quantile over all
    // arms, and one query keeps the per-user pass from running twice).
    let per_variant = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match m.measure {
            Measure::Sum { winsorize: Some(_), .. } => format!("array_agg(named_struct('m', m{i}, 'd', d{i}))"),
            _ => format!(
                "CAST(sum(m{i}) AS DOUBLE), CAST(sum(m{i} * m{i}) AS DOUBLE), CAST(sum(d{i}) AS DOUBLE), \
                 CAST(sum(d{i} * d{i}) AS DOUBLE), CAST(sum(m{i} * d{i}) AS DOUBLE)"
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "WITH per_user AS (SELECT experiment_user('{layout}', {window}, {cuped_period}, event_time, {exposure_variant}, {arguments}) AS u \
         FROM {table} WHERE {bounds} GROUP BY user_id), \
         users AS (SELECT {assigned} AS variant, {values} FROM per_user WHERE u IS NOT NULL) \
         SELECT variant, CAST(count(*) AS DOUBLE) AS users, {per_variant} FROM users GROUP BY variant",
        layout = layout.join(", "),
        arguments = arguments.join(", "),
        table = source.table,
        bounds = bounds.join(" AND "),
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

/// One metric of one arm as the SQL returns it.
enum Measured {
    Sums(Sums),
    /// A winsorized metric: each user's (value, pre-exposure value), capped later.
    Users(Vec<[f64; 2]>),
}

/// The SQL's rows: variant (NULL for users in several), users, then per metric five sums or
/// (winsorized) a list of its users' values.
fn read_rows(rows: &[RecordBatch], plan: &Plan) -> Result<(BTreeMap<String, Vec<Measured>>, f64)> {
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
            let mut c = 2;
            let mut measured = vec![];
            for winsorize in &plan.winsorize {
                measured.push(match winsorize {
                    None => {
                        c += 5;
                        let at = |k: usize| number(c - 5 + k, r);
                        Measured::Sums(Sums { n, m: at(0), m2: at(1), d: at(2), d2: at(3), md: at(4) })
                    }
                    Some(_) => {
                        c += 1;
                        Measured::Users(user_values(batch.column(c - 1).as_ref(), r)?)
                    }
                });
            }
            arms.insert(variant.value(r).to_string(), measured);
        }
    }
    Ok((arms, multiple))
}

/// Row `r` of an `array_agg(named_struct('m', …, 'd', …))` column.
fn user_values(column: &dyn Array, r: usize) -> Result<Vec<[f64; 2]>> {
    let Some(lists) = column.as_any().downcast_ref::<ListArray>() else {
        return plan_err!("experiment: a winsorized metric's values came as {}", column.data_type());
    };
    let list = lists.value(r);
    let pairs = list.as_any().downcast_ref::<StructArray>().expect("named_struct");
    let field = |k: usize| cast(pairs.column(k), &DataType::Float64);
    let (m, d) = (field(0)?, field(1)?);
    let (m, d) = (
        m.as_any().downcast_ref::<Float64Array>().expect("f64"),
        d.as_any().downcast_ref::<Float64Array>().expect("f64"),
    );
    Ok((0..pairs.len()).map(|i| [m.value(i), d.value(i)]).collect())
}

/// The linear-interpolation quantile of sorted values: numpy's default, which GrowthBook caps
/// with (DataFusion's `percentile_cont` rounds the interpolation fraction to 6 digits).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (sorted[position.floor() as usize], sorted[position.ceil() as usize]);
    low + (position - position.floor()) * (high - low)
}

/// Every arm's sums, winsorized metrics capped at the quantile of all arms' users' values
/// (each of the value and the pre-exposure value at its own).
fn capped_sums(arms: BTreeMap<String, Vec<Measured>>, plan: &Plan) -> BTreeMap<String, Vec<Sums>> {
    let caps: Vec<Option<[f64; 2]>> = plan
        .winsorize
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let q = (*q)?;
            let mut all: [Vec<f64>; 2] = [vec![], vec![]];
            for measured in arms.values() {
                if let Measured::Users(users) = &measured[i] {
                    for u in users {
                        all[0].push(u[0]);
                        all[1].push(u[1]);
                    }
                }
            }
            if all[0].is_empty() {
                return None;
            }
            Some(all.map(|mut values| {
                values.sort_unstable_by(f64::total_cmp);
                quantile(&values, q)
            }))
        })
        .collect();
    arms.into_iter()
        .map(|(variant, measured)| {
            let sums = measured
                .into_iter()
                .zip(&caps)
                .map(|(m, cap)| match (m, cap) {
                    (Measured::Sums(sums), _) => sums,
                    (Measured::Users(users), cap) => {
                        let [cap_m, cap_d] = cap.unwrap_or([f64::INFINITY; 2]);
                        let mut s = Sums { n: users.len() as f64, ..Sums::default() };
                        for [m, d] in users {
                            let (m, d) = (m.min(cap_m), d.min(cap_d));
                            s.m += m;
                            s.m2 += m * m;
                            s.d += d;
                            s.d2 += d * d;
                            s.md += m * d;
                        }
                        s
                    }
                })
                .collect();
            (variant, sums)
        })
        .collect()
}

fn finish(plan: &Plan, rows: &[RecordBatch], schema: SchemaRef) -> Result<RecordBatch> {
    let (arms, multiple) = read_rows(rows, plan)?;
    let arms = capped_sums(arms, plan);
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
