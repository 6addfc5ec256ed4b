//! Sample-ratio mismatch: Pearson's chi-square of the exposed users per arm against the shares
//! the arms were assigned (scipy's `chisquare`).

use crate::special::chi_square_sf;

/// The p-value that `users` (per arm) were drawn in proportion to `weights`; `None` with fewer
/// than two arms or no users.
pub fn srm_p_value(users: &[f64], weights: &[f64]) -> Option<f64> {
    let total: f64 = users.iter().sum();
    let weight_total: f64 = weights.iter().sum();
    if users.len() < 2 || total <= 0.0 || weight_total <= 0.0 {
        return None;
    }
    let chi2: f64 = users
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let e = total * w / weight_total;
            (o - e).powi(2) / e
        })
        .sum();
    Some(chi_square_sf(chi2, (users.len() - 1) as f64))
}

/// Below this the split is flagged as a mismatch (the threshold GrowthBook and PostHog use).
pub const SRM_THRESHOLD: f64 = 0.001;
