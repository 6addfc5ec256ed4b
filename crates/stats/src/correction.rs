//! Adjusted p-values over every (metric, variant) comparison of a report, as statsmodels'
//! `multipletests` computes them (`holm`, `fdr_bh`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    None,
    /// Holm–Bonferroni: controls the family-wise error rate.
    Holm,
    /// Benjamini–Hochberg: controls the false discovery rate.
    BenjaminiHochberg,
}

/// Adjusted p-values in the order given; comparisons without a p-value are left out of the
/// family and stay `None`.
pub fn adjust(p_values: &[Option<f64>], correction: Correction) -> Vec<Option<f64>> {
    let mut order: Vec<usize> = (0..p_values.len()).filter(|&i| p_values[i].is_some()).collect();
    order.sort_by(|&a, &b| p_values[a].partial_cmp(&p_values[b]).expect("p-values are numbers"));
    let m = order.len() as f64;
    let p = |rank: usize| p_values[order[rank]].expect("kept above");
    let mut adjusted = vec![None; p_values.len()];
    match correction {
        Correction::None => return p_values.to_vec(),
        Correction::Holm => {
            // Step-down: max over smaller p of (m − rank) p, capped at 1.
            let mut running: f64 = 0.0;
            for rank in 0..order.len() {
                running = running.max(((m - rank as f64) * p(rank)).min(1.0));
                adjusted[order[rank]] = Some(running);
            }
        }
        Correction::BenjaminiHochberg => {
            // Step-up: min over larger p of m p / rank, capped at 1.
            let mut running: f64 = 1.0;
            for rank in (0..order.len()).rev() {
                running = running.min(m * p(rank) / (rank as f64 + 1.0));
                adjusted[order[rank]] = Some(running.min(1.0));
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsmodels_examples() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.2], method=…)[1]
        let p = [Some(0.01), Some(0.04), None, Some(0.03), Some(0.2)];
        let holm = adjust(&p, Correction::Holm);
        assert_eq!(holm, [Some(0.04), Some(0.09), None, Some(0.09), Some(0.2)]);
        let bh = adjust(&p, Correction::BenjaminiHochberg);
        let expected = [0.04, 0.16 / 3.0, 0.0, 0.16 / 3.0, 0.2];
        for (got, want) in bh.iter().zip(expected) {
            if let Some(got) = got {
                assert!((got - want).abs() < 1e-15, "{got} {want}");
            }
        }
    }
}
