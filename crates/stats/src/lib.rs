//! Experiment statistics from per-arm sums: what `experiment(…)` reports for each (metric,
//! variant) against control. Formulas and defaults: docs/experiments.md; every statistic is
//! checked against scipy/statsmodels (`scripts/experiment_goldens.py`).
//!
//! The report's SQL reduces the events to [`Sums`] per metric and arm; everything here works
//! on those sums, so it costs nothing next to the scan.

pub mod bayesian;
pub mod correction;
pub mod frequentist;
pub mod special;
pub mod srm;
pub mod unit;

pub use correction::{adjust, Correction};
pub use srm::{srm_p_value, SRM_THRESHOLD};
pub use unit::{Estimate, Sums};

/// How a metric's per-user value is summarized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0/1 per user: a rate, Beta-binomial posteriors.
    Conversion,
    /// A count or sum per user: the mean per user.
    Mean,
    /// Σ numerator / Σ denominator over users.
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub alpha: f64,
    /// Adjust for the metric's pre-exposure value (the sums' `d`).
    pub cuped: bool,
    /// Always-valid intervals tuned for this many users (GrowthBook's N*), instead of fixed-
    /// horizon ones.
    pub sequential: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { alpha: 0.05, cuped: false, sequential: None }
    }
}

/// One arm's row of a report: its value, and against control (`None` for control itself, or
/// when `note` says why not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub users: f64,
    pub value: f64,
    pub absolute_lift: Option<f64>,
    pub relative_lift: Option<f64>,
    pub ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub chance_to_win: Option<f64>,
    pub credible: Option<[f64; 2]>,
    pub expected_loss: Option<f64>,
    pub note: Option<&'static str>,
}

/// An arm's estimate before CUPED.
pub fn estimate(kind: Kind, sums: &Sums) -> Estimate {
    match kind {
        Kind::Conversion => unit::proportion(sums),
        Kind::Mean => unit::sample_mean(sums),
        Kind::Ratio => unit::ratio(sums),
    }
}

/// The control arm's own row.
pub fn control_row(kind: Kind, control: &Sums) -> Comparison {
    Comparison { users: control.n, value: estimate(kind, control).mean, ..Comparison::default() }
}

/// `treatment` against `control` for one metric.
pub fn compare(kind: Kind, control: &Sums, treatment: &Sums, settings: &Settings) -> Comparison {
    let (raw_c, raw_t) = (estimate(kind, control), estimate(kind, treatment));
    let mut row = Comparison { users: treatment.n, value: raw_t.mean, ..Comparison::default() };
    let cuped = settings.cuped && kind != Kind::Ratio;
    let theta = if cuped { unit::cuped_theta(control, treatment) } else { 0.0 };
    let (c, t, variance) = if theta != 0.0 {
        let (c, t) = (unit::cuped(control, theta, raw_c), unit::cuped(treatment, theta, raw_t));
        (c, t, cuped_relative_variance(control, treatment, theta, &raw_c, &raw_t))
    } else {
        (raw_c, raw_t, frequentist::relative_variance(&raw_c, &raw_t))
    };
    let lift = match frequentist::lift(&c, &t, raw_c.mean, variance) {
        Ok(lift) => lift,
        Err(why) => {
            row.note = Some(why);
            return row;
        }
    };
    row.relative_lift = Some(lift.relative);
    row.absolute_lift = Some(lift.relative * raw_c.mean.abs());
    let (p, ci) = match settings.sequential {
        Some(tuning) => frequentist::sequential_test(&lift, control.n + treatment.n, settings.alpha, tuning),
        None => frequentist::t_test(&lift, settings.alpha),
    };
    row.p_value = Some(p);
    row.ci = Some(ci);
    let posterior = match kind {
        Kind::Conversion if !cuped => {
            bayesian::beta_binomial((control.n, control.m), (treatment.n, treatment.m), settings.alpha)
        }
        _ => bayesian::gaussian(lift.relative, lift.variance.sqrt(), settings.alpha),
    };
    row.chance_to_win = Some(posterior.chance_to_win);
    row.credible = Some(posterior.interval);
    row.expected_loss = Some(posterior.expected_loss);
    row
}

/// GrowthBook's `frequentist_variance_relative_cuped`: the delta-method variance of
/// (adjusted treatment − adjusted control) / raw control, each arm's own (co)variances.
fn cuped_relative_variance(control: &Sums, treatment: &Sums, theta: f64, raw_c: &Estimate, raw_t: &Estimate) -> f64 {
    let (ua, ub) = (raw_c.mean, raw_t.mean);
    let per_arm = |s: &Sums, post_var: f64| (post_var, unit::pre_variance(s), unit::covariance(s));
    let (post_a, pre_a, cov_a) = per_arm(control, raw_c.variance);
    let (post_b, pre_b, cov_b) = per_arm(treatment, raw_t.variance);
    let v_treatment = (post_b + theta * theta * pre_b - 2.0 * theta * cov_b) / (treatment.n * ua * ua);
    let v_control =
        (post_a * ub * ub / (ua * ua) - 2.0 * theta * cov_a * ub / ua + theta * theta * pre_a) / (control.n * ua * ua);
    v_treatment + v_control
}

#[cfg(test)]
mod goldens {
    //! Every case of `tests/goldens/experiments.json` (scipy/statsmodels, written by
    //! `scripts/experiment_goldens.py`) through the functions the report calls.
    use serde_json::Value;

    use super::*;

    /// 1e-9 relative; values under 1e-6 (tail probabilities, where scipy's quadrature of the
    /// Beta posteriors has only absolute accuracy) to 1e-15 absolute.
    fn close(got: f64, want: f64) -> bool {
        got == want || (got - want).abs() <= 1e-9 * want.abs() || (want.abs() < 1e-6 && (got - want).abs() <= 1e-15)
    }

    fn numbers(v: &Value) -> Vec<f64> {
        v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
    }

    fn check(case: &str, field: &str, got: Option<f64>, want: &Value, failures: &mut Vec<String>) {
        let ok = match (got, want.as_f64()) {
            (None, None) => want.is_null(),
            (Some(g), Some(w)) => close(g, w),
            (Some(g), None) => g.is_nan() && want.is_null(),
            _ => false,
        };
        if !ok {
            failures.push(format!("{case}: {field}: got {got:?}, scipy {want}"));
        }
    }

    #[test]
    fn every_statistic_agrees_with_scipy_and_statsmodels() {
        let file: Value = serde_json::from_str(include_str!("../../../tests/goldens/experiments.json")).unwrap();
        let cases = file["cases"].as_array().unwrap();
        assert!(cases.len() >= 200, "{} cases", cases.len());
        let mut failures = vec![];
        let mut compared = 0;
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let kind = match case["kind"].as_str().unwrap() {
                "conversion" => Kind::Conversion,
                "mean" => Kind::Mean,
                _ => Kind::Ratio,
            };
            let s = &case["settings"];
            let settings = Settings {
                alpha: s["alpha"].as_f64().unwrap(),
                cuped: s["cuped"].as_bool().unwrap(),
                sequential: s["sequential"].as_f64(),
            };
            let correction = match s["correction"].as_str().unwrap() {
                "holm" => Correction::Holm,
                "bh" => Correction::BenjaminiHochberg,
                _ => Correction::None,
            };
            let arms: Vec<Sums> = case["arms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| Sums::of(&numbers(&a["m"]), &numbers(&a["d"])))
                .collect();
            let mut rows = vec![control_row(kind, &arms[0])];
            rows.extend(arms[1..].iter().map(|t| compare(kind, &arms[0], t, &settings)));
            let adjusted = adjust(&rows[1..].iter().map(|r| r.p_value).collect::<Vec<_>>(), correction);
            let expected = case["expected"]["rows"].as_array().unwrap();
            for (i, (row, want)) in rows.iter().zip(expected).enumerate() {
                let label = format!("{name}, arm {i}");
                let f = &mut failures;
                check(&label, "users", Some(row.users), &want["users"], f);
                check(&label, "value", Some(row.value), &want["value"], f);
                if i == 0 {
                    continue;
                }
                let null = Value::Null;
                let get = |k: &str| want.get(k).unwrap_or(&null);
                let pair = |v: &Value, j: usize| v.as_array().map(|a| a[j].clone()).unwrap_or(Value::Null);
                check(&label, "relative_lift", row.relative_lift, get("relative_lift"), f);
                check(&label, "absolute_lift", row.absolute_lift, get("absolute_lift"), f);
                check(&label, "p_value", row.p_value, get("p_value"), f);
                check(&label, "adjusted_p_value", adjusted[i - 1], get("adjusted_p_value"), f);
                for j in 0..2 {
                    check(&label, "ci", row.ci.map(|c| c[j]), &pair(get("ci"), j), f);
                    check(&label, "credible", row.credible.map(|c| c[j]), &pair(get("credible"), j), f);
                }
                check(&label, "chance_to_win", row.chance_to_win, get("chance_to_win"), f);
                let loss = row.expected_loss.filter(|l| l.is_finite());
                check(&label, "expected_loss", loss, get("expected_loss"), f);
                if row.note != get("note").as_str() {
                    f.push(format!("{label}: note {:?}, scipy {}", row.note, get("note")));
                }
                compared += 1;
            }
            let users: Vec<f64> = arms.iter().map(|a| a.n).collect();
            let srm = srm_p_value(&users, &numbers(&case["weights"]));
            check(name, "srm_p_value", srm, &case["expected"]["srm_p_value"], &mut failures);
        }
        assert!(failures.is_empty(), "{} of {compared} comparisons differ:\n{}", failures.len(), failures.join("\n"));
    }
}
