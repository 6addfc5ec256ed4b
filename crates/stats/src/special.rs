//! The distributions the tests need: normal, Student's t, chi-square and beta, each to about
//! 1e-13 relative, checked against scipy (`tests/goldens/experiments.json`).
//!
//! Written here rather than taken from `statrs` (0.19) because its regularized incomplete beta
//! stops its continued fraction after 140 terms and returns the unconverged value without a
//! word: Student's t with the tens of thousands of degrees of freedom an experiment has needs
//! more terms. The algorithms are the textbook ones (Lentz's continued fractions, R's `lbeta`
//! with Stirling corrections for large arguments, Newton on the survival function).

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const EPSILON: f64 = 1e-16;
/// Continued fractions converge in O(√max(a, b)) terms; this bounds a pathological input.
const MAX_TERMS: usize = 1_000_000;

pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// lgamma(x) − Stirling's approximation, for x ≥ 10 (asymptotic series, error < 1e-17).
fn stirling_correction(x: f64) -> f64 {
    const C: [f64; 7] =
        [1.0 / 12.0, -1.0 / 360.0, 1.0 / 1260.0, -1.0 / 1680.0, 1.0 / 1188.0, -691.0 / 360_360.0, 1.0 / 156.0];
    let x2 = 1.0 / (x * x);
    C.iter().rev().fold(0.0, |acc, c| acc * x2 + c) / x
}

/// ln B(a, b), without the cancellation of three large lgammas (R's `lbeta`).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    let (p, q) = (a.min(b), a.max(b));
    if p >= 10.0 {
        let corr = stirling_correction(p) + stirling_correction(q) - stirling_correction(p + q);
        -0.5 * q.ln() + LN_SQRT_2PI + corr + (p - 0.5) * (p / (p + q)).ln() + q * (-p / (p + q)).ln_1p()
    } else if q >= 10.0 {
        let corr = stirling_correction(q) - stirling_correction(p + q);
        ln_gamma(p) + corr + p - p * (p + q).ln() + (q - 0.5) * (-p / (p + q)).ln_1p()
    } else {
        ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
    }
}

pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

pub fn normal_sf(x: f64) -> f64 {
    normal_cdf(-x)
}

/// The standard normal quantile: Acklam's approximation, then Halley steps on `erfc`.
pub fn normal_ppf(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return match p {
            0.0 => f64::NEG_INFINITY,
            1.0 => f64::INFINITY,
            _ => f64::NAN,
        };
    }
    if p > 0.5 {
        // 1 − p is exact for p in [0.5, 1] (Sterbenz).
        return -normal_ppf_lower(1.0 - p);
    }
    normal_ppf_lower(p)
}

fn normal_ppf_lower(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let mut x = if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    for _ in 0..3 {
        let e = normal_cdf(x) - p;
        let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
        x -= u / (1.0 + 0.5 * x * u);
    }
    x
}

/// The regularized incomplete beta I_x(a, b); `y` is 1 − x, passed so that callers that know
/// it exactly (t's `t²/(ν+t²)`) keep the digits a subtraction would lose.
pub fn beta_reg(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    // ln of the value near 1 from the small one (log1p): with a in the hundreds of thousands,
    // a · ln x must not carry x's rounding.
    let ln = |v: f64, other: f64| if v > 0.5 { (-other).ln_1p() } else { v.ln() };
    let front = |a: f64, b: f64, x: f64, y: f64| (a * ln(x, y) + b * ln(y, x) - ln_beta(a, b)).exp() / a;
    if x < (a + 1.0) / (a + b + 2.0) {
        front(a, b, x, y) * beta_fraction(a, b, x)
    } else {
        1.0 - front(b, a, y, x) * beta_fraction(b, a, y)
    }
}

/// The continued fraction of I_x(a, b) (Lentz's method).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < tiny { tiny } else { d };
    let mut h = d;
    let step = |aa: f64, c: &mut f64, d: &mut f64| {
        *d = 1.0 + aa * *d;
        *d = 1.0 / if d.abs() < tiny { tiny } else { *d };
        *c = 1.0 + aa / *c;
        if c.abs() < tiny {
            *c = tiny;
        }
        *d * *c
    };
    for m in 1..MAX_TERMS {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let delta = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), &mut c, &mut d);
        h *= delta;
        if (delta - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// P(T > t) for Student's t with `dof` degrees of freedom (`dof` may be fractional).
pub fn student_t_sf(t: f64, dof: f64) -> f64 {
    if t.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let t2 = t * t;
    let tail = 0.5 * beta_reg(0.5 * dof, 0.5, dof / (dof + t2), t2 / (dof + t2));
    if t >= 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

pub fn student_t_pdf(t: f64, dof: f64) -> f64 {
    (-(dof + 1.0) / 2.0 * (t * t / dof).ln_1p() - 0.5 * dof.ln() - ln_beta(dof / 2.0, 0.5)).exp()
}

/// The t with P(T > t) = q, for 0 < q ≤ 0.5 (the upper quantiles intervals use).
pub fn student_t_isf(q: f64, dof: f64) -> f64 {
    if !(q > 0.0 && q <= 0.5) || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    // The survival function is convex for t ≥ 0 and t's tail is heavier than the normal's, so
    // Newton from the normal quantile rises to the root without overshooting it.
    let mut t = -normal_ppf(q);
    for _ in 0..500 {
        let step = (student_t_sf(t, dof) - q) / student_t_pdf(t, dof);
        t += step;
        if !step.is_finite() || step.abs() <= 1e-15 * t.abs().max(1e-300) {
            break;
        }
    }
    t
}

/// The regularized upper incomplete gamma Q(a, x).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) by its series.
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..MAX_TERMS {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * EPSILON {
                break;
            }
        }
        1.0 - sum * front
    } else {
        // Q(a, x) by its continued fraction (Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_TERMS {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            d = 1.0 / if d.abs() < tiny { tiny } else { d };
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < EPSILON {
                break;
            }
        }
        front * h
    }
}

/// P(X > x) for chi-square with `dof` degrees of freedom.
pub fn chi_square_sf(x: f64, dof: f64) -> f64 {
    gamma_q(dof / 2.0, x / 2.0)
}

/// P(X > Y) for independent X ~ Beta(ax, bx), Y ~ Beta(ay, by), with integer parameters
/// (Beta(1, 1) posteriors of counts). Evan Miller's closed form,
/// Σ_{i<ax} B(ay+i, by+bx) / ((bx+i) B(1+i, bx) B(ay, by)), summed in log space with each
/// term from the previous; it is also P(1−Y > 1−X), which sums over by terms instead, so the
/// shorter of the two runs.
pub fn beta_greater(ax: f64, bx: f64, ay: f64, by: f64) -> f64 {
    if ax <= by {
        beta_greater_sum(ax, bx, ay, by)
    } else {
        beta_greater_sum(by, ay, bx, ax)
    }
}

fn beta_greater_sum(ax: f64, bx: f64, ay: f64, by: f64) -> f64 {
    // term_0 = B(ay, by + bx) / B(ay, by); term_{i+1} / term_i = (ay+i)(bx+i) / ((ay+by+bx+i)(1+i)).
    let mut log_term = ln_beta(ay, by + bx) - ln_beta(ay, by);
    let (mut log_sum, mut i) = (log_term, 0.0);
    while i + 1.0 < ax {
        log_term += ((ay + i) * (bx + i) / ((ay + by + bx + i) * (1.0 + i))).ln();
        log_sum = log_add(log_sum, log_term);
        i += 1.0;
    }
    log_sum.exp()
}

fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    // Values from scipy 1.14 (scipy.stats.norm, t, chi2; scipy.special.betaln).
    #[test]
    fn known_values() {
        assert!(close(normal_ppf(0.975), 1.959_963_984_540_054, 1e-14));
        assert!(close(normal_ppf(1e-10), -6.361_340_902_404_056, 1e-13));
        assert!(close(normal_sf(5.0), 2.866_515_718_791_933e-7, 1e-13));
        assert!(close(student_t_sf(2.0, 3.0), 0.069_662_984_279_421_52, 1e-13));
        assert!(close(student_t_isf(0.025, 10.0), 2.228_138_851_986_275_3, 1e-13));
        assert!(close(student_t_isf(0.025, 1.0), 12.706_204_736_174_705, 1e-12));
        assert!(close(chi_square_sf(3.0, 2.0), 0.223_130_160_148_429_82, 1e-13));
        assert!(close(ln_beta(3.0, 4.0), (1.0f64 / 60.0).ln(), 1e-14));
    }

    #[test]
    fn large_degrees_of_freedom_converge() {
        // Near the normal, as it must be; statrs's 140-term fraction is far off here.
        // mpmath at 40 digits; scipy 1.17's own t is off by 3e-9 relative here (its betaln).
        assert!(close(student_t_isf(0.025, 1e6), 1.959_966_356_814_107, 1e-10));
        assert!(close(student_t_sf(1.959_966_4, 1e6), 0.024_999_997_476_005_48, 1e-10));
    }

    #[test]
    fn beta_greater_is_symmetric_and_matches_small_cases() {
        // X ~ Beta(2,1), Y ~ Beta(1,1): P(X > Y) = ∫ 2x · x dx = 2/3.
        assert!(close(beta_greater(2.0, 1.0, 1.0, 1.0), 2.0 / 3.0, 1e-14));
        let (p, q) = (beta_greater(30.0, 70.0, 25.0, 75.0), beta_greater(25.0, 75.0, 30.0, 70.0));
        assert!(close(p + q, 1.0, 1e-13));
    }
}
