//! Bayesian summaries of a lift: chance to beat control, credible interval and expected loss.
//!
//! Means and ratios: the relative lift's posterior under a flat prior is normal with the
//! frequentist point estimate and delta-method variance (GrowthBook's Gaussian effect test).
//! Conversion: each arm's rate is Beta(1 + conversions, 1 + non-conversions); chance to win
//! and expected loss are exact for those posteriors, the interval is the normal approximation
//! of the relative lift with the posteriors' means and variances.

use crate::special::{beta_greater, normal_cdf, normal_pdf, normal_ppf};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// P(treatment's value > control's).
    pub chance_to_win: f64,
    /// Central (1 − alpha) credible interval of the relative lift.
    pub interval: [f64; 2],
    /// E[max(−relative lift, 0)]: what shipping the treatment costs, in relative terms, where
    /// it is in fact worse.
    pub expected_loss: f64,
}

/// The relative lift's posterior N(mean, sd²).
pub fn gaussian(mean: f64, sd: f64, alpha: f64) -> Posterior {
    let z = -normal_ppf(alpha / 2.0);
    Posterior {
        chance_to_win: normal_cdf(mean / sd),
        interval: [mean - z * sd, mean + z * sd],
        expected_loss: sd * normal_pdf(mean / sd) - mean * normal_cdf(-mean / sd),
    }
}

/// Conversion counts `(users, conversions)` of control and treatment.
pub fn beta_binomial(control: (f64, f64), treatment: (f64, f64), alpha: f64) -> Posterior {
    let (ac, bc) = (1.0 + control.1, 1.0 + control.0 - control.1);
    let (at, bt) = (1.0 + treatment.1, 1.0 + treatment.0 - treatment.1);
    let mean = |a: f64, b: f64| a / (a + b);
    let var = |a: f64, b: f64| a * b / ((a + b).powi(2) * (a + b + 1.0));
    let (mc, mt) = (mean(ac, bc), mean(at, bt));
    let lift = mt / mc - 1.0;
    let sd = (var(at, bt) / (mc * mc) + var(ac, bc) * mt * mt / mc.powi(4)).sqrt();
    let z = -normal_ppf(alpha / 2.0);
    // E[max(1 − p_t/p_c, 0)] = P(p_t < p_c) − m_t · E[F_{t+1}(p_c) / p_c], and p_c's density
    // over p_c is (a+b−1)/(a−1) times Beta(a−1, b)'s, so the second term is a beta comparison too.
    // Without a control conversion (a = 1) the relative loss is unbounded.
    let expected_loss = if ac > 1.0 {
        let loss =
            beta_greater(ac, bc, at, bt) - mt * (ac + bc - 1.0) / (ac - 1.0) * beta_greater(ac - 1.0, bc, at + 1.0, bt);
        loss.max(0.0)
    } else {
        f64::INFINITY
    };
    Posterior { chance_to_win: beta_greater(at, bt, ac, bc), interval: [lift - z * sd, lift + z * sd], expected_loss }
}
