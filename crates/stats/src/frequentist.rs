//! Welch's t on the relative lift: the delta-method variance of (treatment − control) /
//! control, Welch–Satterthwaite degrees of freedom, a two-sided p-value and interval; and the
//! always-valid (sequential) interval GrowthBook documents.

use crate::special::{student_t_isf, student_t_sf};
use crate::unit::Estimate;

/// The relative lift and its variance, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    /// (treatment − control) / control (CUPED: adjusted means over the control's raw mean).
    pub relative: f64,
    pub variance: f64,
    /// Welch–Satterthwaite degrees of freedom of the two arms' per-user variances.
    pub dof: f64,
}

/// Why a comparison has no statistics (shown in the report's `note` column).
pub const TOO_FEW_USERS: &str = "fewer than 2 users in an arm";
pub const CONTROL_ZERO: &str = "control's value is 0: a relative lift is undefined";
pub const ZERO_VARIANCE: &str = "zero variance: every user has the same value";

/// The lift of `treatment` over `control`. `control_raw_mean` is the control's mean before
/// CUPED (the denominator of the relative lift); `variance` is the lift's delta-method variance
/// (`crate::cuped_relative_variance` for CUPED, [`relative_variance`] otherwise).
pub fn lift(
    control: &Estimate,
    treatment: &Estimate,
    control_raw_mean: f64,
    variance: f64,
) -> Result<Lift, &'static str> {
    if control.n < 2.0 || treatment.n < 2.0 {
        return Err(TOO_FEW_USERS);
    }
    if control_raw_mean == 0.0 || control.mean == 0.0 {
        return Err(CONTROL_ZERO);
    }
    if variance.is_nan() || variance <= 0.0 || (control.variance <= 0.0 && treatment.variance <= 0.0) {
        return Err(ZERO_VARIANCE);
    }
    Ok(Lift {
        relative: (treatment.mean - control.mean) / control_raw_mean.abs(),
        variance,
        dof: welch_dof(control, treatment),
    })
}

/// The delta-method variance of treatment / control − 1 for independent arms.
pub fn relative_variance(control: &Estimate, treatment: &Estimate) -> f64 {
    let (mc, mt) = (control.mean, treatment.mean);
    treatment.variance / (treatment.n * mc * mc) + control.variance * mt * mt / (control.n * mc.powi(4))
}

/// (v_c/n_c + v_t/n_t)² / ((v_c/n_c)²/(n_c − 1) + (v_t/n_t)²/(n_t − 1)).
pub fn welch_dof(control: &Estimate, treatment: &Estimate) -> f64 {
    let (c, t) = (control.variance / control.n, treatment.variance / treatment.n);
    (c + t).powi(2) / (c * c / (control.n - 1.0) + t * t / (treatment.n - 1.0))
}

/// Two-sided p-value and (1 − alpha) confidence interval of the relative lift.
pub fn t_test(lift: &Lift, alpha: f64) -> (f64, [f64; 2]) {
    let se = lift.variance.sqrt();
    let p = 2.0 * student_t_sf((lift.relative / se).abs(), lift.dof);
    let half = student_t_isf(alpha / 2.0, lift.dof) * se;
    (p.min(1.0), [lift.relative - half, lift.relative + half])
}

/// GrowthBook's always-valid interval (a mixture sequential probability ratio test, Howard et
/// al. 2021) for `users` exposed users in the two arms, tuned for `tuning` (N*) users:
/// ρ = √((−2 ln α + ln(−2 ln α + 1)) / N*), half-width = √(s² · 2(Nρ² + 1)/(N²ρ²) ·
/// ln(√(Nρ² + 1)/α)) with s² = variance · N.
pub fn sequential_half_width(lift: &Lift, users: f64, alpha: f64, tuning: f64) -> f64 {
    let (log_alpha, rho2) = (alpha.ln(), mixture_rho2(alpha, tuning));
    let s2 = lift.variance * users;
    let n = users;
    (s2 * 2.0 * (n * rho2 + 1.0) / (n * n * rho2) * ((n * rho2 + 1.0).sqrt().ln() - log_alpha)).sqrt()
}

/// The sequential test at `alpha`: GrowthBook's always-valid p-value, 1 / E with
/// E = exp(ρ²S² / (2(Nρ² + 1))) / √(Nρ² + 1) and S² = lift² N / variance (below alpha exactly
/// when the interval leaves out 0), and the interval.
pub fn sequential_test(lift: &Lift, users: f64, alpha: f64, tuning: f64) -> (f64, [f64; 2]) {
    let half = sequential_half_width(lift, users, alpha, tuning);
    let rho2 = mixture_rho2(alpha, tuning);
    let s2 = lift.relative * lift.relative * users / lift.variance;
    let log_e = rho2 * s2 / (2.0 * (users * rho2 + 1.0)) - 0.5 * (users * rho2 + 1.0).ln();
    ((-log_e).exp().min(1.0), [lift.relative - half, lift.relative + half])
}

/// ρ² = (−2 ln α + ln(1 − 2 ln α)) / N*: the mixture's variance, tuned for N* users.
fn mixture_rho2(alpha: f64, tuning: f64) -> f64 {
    let log_alpha = alpha.ln();
    (-2.0 * log_alpha + (-2.0 * log_alpha + 1.0).ln()) / tuning
}
