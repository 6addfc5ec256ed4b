//! One arm's metric as a mean per exposed user and that mean's per-user variance, from the
//! sums the report's SQL computes (GrowthBook's `SampleMeanStatistic`, `ProportionStatistic`,
//! `RatioStatistic` and `RegressionAdjustedStatistic`).

/// Sums over one arm's exposed users of a metric value `m` and a second value `d`: the
/// denominator of a ratio metric, or the pre-exposure value of a CUPED covariate (else 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub n: f64,
    pub m: f64,
    pub m2: f64,
    pub d: f64,
    pub d2: f64,
    pub md: f64,
}

impl Sums {
    /// The sums of per-user values (`d` empty for metrics without a second value).
    pub fn of(m: &[f64], d: &[f64]) -> Sums {
        let d_at = |i: usize| d.get(i).copied().unwrap_or(0.0);
        let mut s = Sums { n: m.len() as f64, ..Sums::default() };
        for (i, &x) in m.iter().enumerate() {
            let y = d_at(i);
            s.m += x;
            s.m2 += x * x;
            s.d += y;
            s.d2 += y * y;
            s.md += x * y;
        }
        s
    }

    fn mean_m(&self) -> f64 {
        self.m / self.n
    }

    fn mean_d(&self) -> f64 {
        self.d / self.n
    }

    /// Sample (n − 1) variance of `m`.
    fn var_m(&self) -> f64 {
        sample_covariance(self.n, self.m, self.m, self.m2)
    }

    fn var_d(&self) -> f64 {
        sample_covariance(self.n, self.d, self.d, self.d2)
    }

    fn cov_md(&self) -> f64 {
        sample_covariance(self.n, self.m, self.d, self.md)
    }
}

/// (Σxy − Σx Σy / n) / (n − 1), never below 0 for a variance (rounding can go a hair under).
fn sample_covariance(n: f64, sx: f64, sy: f64, sxy: f64) -> f64 {
    let c = (sxy - sx * sy / n) / (n - 1.0);
    if sx == sy && sxy >= 0.0 {
        c.max(0.0)
    } else {
        c
    }
}

/// An arm's estimate: `mean` (a rate, a mean per user or a ratio) and the per-user variance
/// whose `variance / n` is the variance of `mean`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: f64,
    pub mean: f64,
    pub variance: f64,
}

/// A conversion rate: the variance of a 0/1 value, p(1 − p) (GrowthBook's proportion).
pub fn proportion(s: &Sums) -> Estimate {
    let p = s.mean_m();
    Estimate { n: s.n, mean: p, variance: p * (1.0 - p) }
}

/// A mean per user (counts, sums): the sample variance.
pub fn sample_mean(s: &Sums) -> Estimate {
    Estimate { n: s.n, mean: s.mean_m(), variance: s.var_m() }
}

/// Σm / Σd, with the delta-method variance of a ratio of means.
pub fn ratio(s: &Sums) -> Estimate {
    let (mm, md) = (s.mean_m(), s.mean_d());
    let variance =
        s.var_m() / (md * md) - 2.0 * s.cov_md() * mm / (md * md * md) + mm * mm * s.var_d() / (md * md * md * md);
    Estimate { n: s.n, mean: mm / md, variance }
}

/// The sample variance of the pre-exposure value (or denominator).
pub fn pre_variance(s: &Sums) -> f64 {
    s.var_d()
}

/// The sample covariance of the metric and its pre-exposure value (or denominator).
pub fn covariance(s: &Sums) -> f64 {
    s.cov_md()
}

/// CUPED's θ: the slope of the metric on its pre-exposure value, pooled over both arms.
pub fn cuped_theta(a: &Sums, b: &Sums) -> f64 {
    let pooled = Sums { n: a.n + b.n, m: a.m + b.m, m2: a.m2 + b.m2, d: a.d + b.d, d2: a.d2 + b.d2, md: a.md + b.md };
    let var_d = pooled.var_d();
    if var_d > 0.0 {
        pooled.cov_md() / var_d
    } else {
        0.0
    }
}

/// The metric less θ times its pre-exposure value: the same mean difference between arms in
/// expectation, with the variance the covariate explains removed.
pub fn cuped(s: &Sums, theta: f64, unadjusted: Estimate) -> Estimate {
    let variance = unadjusted.variance + theta * theta * s.var_d() - 2.0 * theta * s.cov_md();
    Estimate { n: s.n, mean: unadjusted.mean - theta * s.mean_d(), variance: variance.max(0.0) }
}
