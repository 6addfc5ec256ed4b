"""Generates golden cases for the experiment statistics from scipy and statsmodels.

    .venv/bin/pip install -r scripts/requirements-goldens.txt
    .venv/bin/python scripts/experiment_goldens.py     # writes tests/goldens/experiments.json

Each case is random per-user data for 2–4 arms of one metric (conversion 0/1, a count or sum
per user, or a ratio of two per-user values, with a pre-exposure value for CUPED), and random
settings (alpha, CUPED, sequential, correction, assignment weights). The expected statistics
are computed here from the raw values with numpy, scipy.stats, scipy.integrate and
statsmodels, by a route of their own (scipy's Welch test for the degrees of freedom, a
truncated normal for the Gaussian loss, numerical integration of the Beta posteriors,
`chisquare`, `multipletests`), and crates/stats checks every number to 1e-9 relative.
The generator is deterministic for a seed.
"""

import argparse
import json
import math
import os

import numpy as np
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests

TOO_FEW_USERS = "fewer than 2 users in an arm"
CONTROL_ZERO = "control's value is 0: a relative lift is undefined"
ZERO_VARIANCE = "zero variance: every user has the same value"


def arm_estimate(kind, m, d):
    """Mean and per-user variance of one arm (before CUPED)."""
    n = len(m)
    if kind == "conversion":
        p = float(np.mean(m)) if n else math.nan
        return p, p * (1 - p)
    if kind == "mean":
        return (float(np.mean(m)) if n else math.nan), (float(np.var(m, ddof=1)) if n > 1 else math.nan)
    mm, md = (float(np.mean(m)), float(np.mean(d))) if n else (math.nan, math.nan)
    if n < 2:
        return mm / md if md else math.nan, math.nan
    cov = np.cov(np.vstack([m, d]), ddof=1)
    var = cov[0, 0] / md**2 - 2 * cov[0, 1] * mm / md**3 + mm**2 * cov[1, 1] / md**4
    return mm / md, float(var)


def beta_chance(at, bt, ac, bc):
    """P(p_t > p_c) for Beta posteriors, by quadrature of f_t · F_c."""
    lo, hi = window(at, bt, ac, bc)
    f = lambda x: stats.beta.pdf(x, at, bt) * stats.beta.cdf(x, ac, bc)
    return quad(f, lo, hi, [at / (at + bt), ac / (ac + bc)])


def beta_relative_loss(at, bt, ac, bc):
    """E[max(1 − p_t / p_c, 0)]: ∫ f_c(x) (F_t(x) − m_t F_{t+1}(x) / x) dx."""
    lo, hi = window(at, bt, ac, bc)
    mt = at / (at + bt)
    f = lambda x: stats.beta.pdf(x, ac, bc) * (stats.beta.cdf(x, at, bt) - mt * stats.beta.cdf(x, at + 1, bt) / x)
    return quad(f, lo, hi, [at / (at + bt), ac / (ac + bc)])


def window(*params):
    """Where both posteriors have mass: 40 standard deviations about each mean."""
    (at, bt, ac, bc) = params
    edges = []
    for a, b in ((at, bt), (ac, bc)):
        mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        edges += [mean - 40 * sd, mean + 40 * sd]
    return max(0.0, min(edges)), min(1.0, max(edges))


def quad(f, lo, hi, points):
    points = sorted(p for p in points if lo < p < hi)
    cuts = [lo] + points + [hi]
    total = 0.0
    for a, b in zip(cuts, cuts[1:]):
        value, _ = integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=2000)
        total += value
    return total


def sequential_half_width(variance, n, alpha, tuning):
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    s2 = variance * n
    return math.sqrt(s2 * 2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))


def sequential_p(point, variance, n, alpha, tuning):
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    s2 = point**2 * n / variance
    e = math.exp(rho2 * s2 / (2 * (n * rho2 + 1))) / math.sqrt(n * rho2 + 1)
    return min(1.0, 1 / e)


def compare(kind, control, treatment, settings):
    """One treatment against control; raw per-user arrays in, statistics out."""
    (mc, dc), (mt, dt) = control, treatment
    nc, nt = len(mc), len(mt)
    uc, vc = arm_estimate(kind, mc, dc)
    ut, vt = arm_estimate(kind, mt, dt)
    row = {"users": nt, "value": ut}
    if nc < 2 or nt < 2:
        return {**row, "note": TOO_FEW_USERS}
    alpha = settings["alpha"]
    cuped = settings["cuped"] and kind != "ratio"
    theta = 0.0
    if cuped:
        m_all, d_all = np.concatenate([mc, mt]), np.concatenate([dc, dt])
        var_d = float(np.var(d_all, ddof=1))
        if var_d > 0:
            theta = float(np.cov(m_all, d_all, ddof=1)[0, 1]) / var_d
    if uc == 0:
        return {**row, "note": CONTROL_ZERO}
    if theta != 0.0:
        cov_c, cov_t = np.cov(mc, dc, ddof=1), np.cov(mt, dt, ddof=1)
        adj_c = uc - theta * float(np.mean(dc))
        adj_t = ut - theta * float(np.mean(dt))
        avc = vc + theta**2 * cov_c[1, 1] - 2 * theta * cov_c[0, 1]
        avt = vt + theta**2 * cov_t[1, 1] - 2 * theta * cov_t[0, 1]
        variance = (vt + theta**2 * cov_t[1, 1] - 2 * theta * cov_t[0, 1]) / (nt * uc**2) + (
            vc * ut**2 / uc**2 - 2 * theta * cov_c[0, 1] * ut / uc + theta**2 * cov_c[1, 1]
        ) / (nc * uc**2)
        est_c, est_t = (adj_c, max(avc, 0.0)), (adj_t, max(avt, 0.0))
    else:
        est_c, est_t = (uc, vc), (ut, vt)
        variance = vt / (nt * uc**2) + vc * ut**2 / (nc * uc**4)
    if est_c[0] == 0:
        return {**row, "note": CONTROL_ZERO}
    if not variance > 0 or (est_c[1] <= 0 and est_t[1] <= 0):
        return {**row, "note": ZERO_VARIANCE}
    point = (est_t[0] - est_c[0]) / abs(uc)
    se = math.sqrt(variance)
    a, b = est_c[1] / nc, est_t[1] / nt
    dof = (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))
    if kind == "mean" and theta == 0.0:
        # The same degrees of freedom as scipy's own Welch test.
        welch = stats.ttest_ind(mt, mc, equal_var=False)
        assert abs(welch.df - dof) <= 1e-9 * dof, (welch.df, dof)
    if settings["sequential"]:
        n = nc + nt
        half = sequential_half_width(variance, n, alpha, settings["sequential"])
        p, ci = sequential_p(point, variance, n, alpha, settings["sequential"]), [point - half, point + half]
    else:
        p = min(1.0, 2 * stats.t.sf(abs(point / se), dof))
        half = stats.t.ppf(1 - alpha / 2, dof) * se
        ci = [point - half, point + half]
    row.update(relative_lift=point, absolute_lift=point * abs(uc), p_value=p, ci=ci)
    if kind == "conversion" and not settings["cuped"]:
        ac, bc = 1 + float(np.sum(mc)), 1 + nc - float(np.sum(mc))
        at, bt = 1 + float(np.sum(mt)), 1 + nt - float(np.sum(mt))
        pc, pt = stats.beta(ac, bc), stats.beta(at, bt)
        lift = pt.mean() / pc.mean() - 1
        sd = math.sqrt(pt.var() / pc.mean() ** 2 + pc.var() * pt.mean() ** 2 / pc.mean() ** 4)
        z = stats.norm.ppf(1 - alpha / 2)
        row["chance_to_win"] = beta_chance(at, bt, ac, bc)
        row["credible"] = [lift - z * sd, lift + z * sd]
        row["expected_loss"] = beta_relative_loss(at, bt, ac, bc) if ac > 1 else None
    else:
        posterior = stats.norm(point, se)
        row["chance_to_win"] = posterior.sf(0)
        row["credible"] = list(posterior.ppf([alpha / 2, 1 - alpha / 2]))
        below = stats.truncnorm(-np.inf, (0 - point) / se, loc=point, scale=se)
        row["expected_loss"] = posterior.cdf(0) * -below.mean() if posterior.cdf(0) > 0 else 0.0
    return row


def random_values(rng, kind, n, effect):
    if kind == "conversion":
        rate = rng.choice([0.0, 0.02, 0.1, 0.3, 0.5, 0.9, 1.0]) if rng.random() < 0.15 else rng.uniform(0.05, 0.6)
        m = (rng.random(n) < min(1.0, rate * (1 + effect))).astype(float)
        d = np.where(rng.random(n) < 0.5, m, (rng.random(n) < rate).astype(float))
        return m, d
    if kind == "mean":
        base = rng.gamma(1.5, 2.0, n)
        if rng.random() < 0.5:
            m = rng.poisson(base * (1 + effect)).astype(float)
        else:
            m = np.round(np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(3, 1, n) * (1 + effect)), 2)
        d = np.round(base + rng.normal(0, 0.5, n), 2)
        if rng.random() < 0.05:
            m = np.full(n, 3.0)
        return m, d
    d = rng.poisson(3, n).astype(float) + 1
    m = np.round(d * rng.lognormal(2, 0.5, n) * (1 + effect), 2)
    return m, d


def random_case(rng, index):
    kind = ["conversion", "mean", "ratio"][index % 3]
    arms = int(rng.choice([2, 2, 3, 4]))
    sizes = [int(rng.choice([0, 1, 2, 3])) if rng.random() < 0.04 else int(rng.integers(5, 300)) for _ in range(arms)]
    weights = [1.0] * arms if rng.random() < 0.7 else [float(w) for w in rng.integers(1, 5, arms)]
    settings = {
        "alpha": float(rng.choice([0.05, 0.05, 0.1, 0.01])),
        "cuped": kind != "ratio" and bool(rng.random() < 0.35),
        "sequential": float(rng.choice([5000, 1000])) if rng.random() < 0.25 else None,
        "correction": str(rng.choice(["none", "none", "holm", "bh"])),
    }
    data = []
    for i, n in enumerate(sizes):
        effect = 0.0 if i == 0 else float(rng.choice([0.0, 0.05, 0.15, -0.1, 0.5]))
        m, d = random_values(rng, kind, n, effect)
        data.append((m, d))
    return kind, weights, settings, data


def edge_cases():
    """The cases the issue names, as raw data: (name, kind, weights, settings, arms)."""
    plain = {"alpha": 0.05, "cuped": False, "sequential": None, "correction": "none"}
    conv = lambda n, k: (np.array([1.0] * k + [0.0] * (n - k)), np.zeros(n))
    return [
        ("a variant with no conversions", "conversion", [1, 1], plain, [conv(200, 30), conv(200, 0)]),
        ("control with no conversions", "conversion", [1, 1], plain, [conv(200, 0), conv(200, 12)]),
        ("all converting", "conversion", [1, 1], plain, [conv(150, 150), conv(160, 160)]),
        ("all converting in one arm", "conversion", [1, 1], plain, [conv(150, 60), conv(160, 160)]),
        ("one user", "mean", [1, 1], plain, [(np.array([2.0, 3.0, 5.0]), np.zeros(3)), (np.array([4.0]), np.zeros(1))]),
        ("no exposures in a variant", "mean", [1, 1, 1], plain,
         [(np.array([1.0, 2.0, 3.0]), np.zeros(3)), (np.array([]), np.array([])), (np.array([2.0, 2.0, 5.0]), np.zeros(3))]),
        ("zero variance", "mean", [1, 1], plain, [(np.full(50, 2.0), np.zeros(50)), (np.full(40, 3.0), np.zeros(40))]),
        ("unequal weights", "conversion", [1, 3], plain, [conv(1000, 100), conv(3100, 340)]),
        ("a strong sample-ratio mismatch", "conversion", [1, 1], plain, [conv(1000, 100), conv(1300, 140)]),
    ]


def evaluate(kind, weights, settings, data):
    control = data[0]
    rows = [{"users": len(control[0]), "value": arm_estimate(kind, *control)[0]}]
    rows += [compare(kind, control, arm, settings) for arm in data[1:]]
    ps = [r.get("p_value") for r in rows[1:]]
    method = {"holm": "holm", "bh": "fdr_bh"}.get(settings["correction"])
    kept = [i for i, p in enumerate(ps) if p is not None]
    adjusted = list(ps)
    if method and kept:
        for i, q in zip(kept, multipletests([ps[i] for i in kept], method=method)[1]):
            adjusted[i] = float(q)
    for r, q in zip(rows[1:], adjusted):
        r["adjusted_p_value"] = q
    users = [len(m) for m, _ in data]
    total = sum(users)
    srm = None
    if total > 0:
        expected = [total * w / sum(weights) for w in weights]
        srm = float(stats.chisquare(users, expected).pvalue)
    return {"rows": [clean(r) for r in rows], "srm_p_value": srm}


def clean(row):
    out = {}
    for k, v in row.items():
        if isinstance(v, (list, tuple)):
            v = [float(x) for x in v]
        elif isinstance(v, (np.floating, float)):
            v = None if math.isnan(v) else float(v)
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    return out


def encode(name, kind, weights, settings, data):
    return {
        "name": name,
        "kind": kind,
        "weights": [float(w) for w in weights],
        "settings": settings,
        "arms": [{"m": [float(x) for x in m], "d": [float(x) for x in d]} for m, d in data],
        "expected": evaluate(kind, weights, settings, data),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=240)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "goldens", "experiments.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = [encode(*case) for case in edge_cases()]
    for i in range(args.cases):
        kind, weights, settings, data = random_case(rng, i)
        cases.append(encode(f"random {i}", kind, weights, settings, data))
    with open(args.out, "w") as f:
        json.dump({"generator": "scripts/experiment_goldens.py", "seed": args.seed, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases -> {args.out}")


if __name__ == "__main__":
    main()
