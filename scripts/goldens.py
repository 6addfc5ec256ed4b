"""Generates golden cases for the behavioural functions from ClickHouse itself (chdb).

    scripts/setup-bench-env.sh && .venv/bin/pip install -r scripts/requirements-goldens.txt
    .venv/bin/python scripts/goldens.py            # writes tests/goldens/clickhouse.json

Each case is a small random event list (time in seconds, event letter or NULL) and one call
of windowFunnel / retention / sequenceMatch / sequenceCount with random parameters; the file
stores the rows, Northstar's SQL for the call, and ClickHouse's answer. tests/it/goldens.rs
replays every case through Northstar and compares. The generator is deterministic for a seed,
so regenerating with the same chdb version reproduces the file.
"""

import argparse
import json
import os
import random

import chdb

LETTERS = "ABCDEF"
MODES = ["strict_order", "strict_deduplication", "strict_increase", "strict_once"]


def random_rows(rng, distinct_times):
    n = rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 10, 12])
    if distinct_times:
        times = rng.sample(range(0, 120), n)
    else:
        times = [rng.randint(0, 40) for _ in range(n)]
    rows = []
    for t in times:
        e = None if rng.random() < 0.08 else rng.choice(LETTERS[: rng.choice([3, 4, 6])])
        rows.append([t, e])
    return rows


def ch_values(rows):
    if not rows:
        return "values('t DateTime, e Nullable(String)', (0, NULL)) WHERE 0"
    body = ", ".join(f"({t}, {'NULL' if e is None else repr(e)})" for t, e in rows)
    return f"values('t DateTime, e Nullable(String)', {body})"


def conditions(steps):
    return [f"e = '{LETTERS[i]}'" for i in range(steps)]


def window_funnel_case(rng):
    steps = rng.randint(1, 5)
    window = rng.choice([0, 1, 3, 5, 10, 20, 60])
    modes = [m for m in MODES if rng.random() < 0.3]
    if "strict_order" in modes and rng.random() < 0.4:
        modes.append("allow_reentry")
    conds = conditions(steps)
    params = ", ".join([str(window)] + [repr(m) for m in modes])
    ch = f"windowFunnel({params})(t, {', '.join(conds)})"
    mode_arg = f"'{','.join(modes)}', " if modes else ""
    ours = f"window_funnel({window}, {mode_arg}ts, {', '.join(conds)})"
    return ch, ours, False


def retention_case(rng):
    conds = conditions(rng.randint(2, 5))
    return f"retention({', '.join(conds)})", f"retention({', '.join(conds)})", False


def random_pattern(rng, conds):
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.55 or not parts:
            parts.append(f"(?{rng.randint(1, conds)})")
        elif kind < 0.7:
            parts.append(".")
        elif kind < 0.85:
            parts.append(".*")
        if rng.random() < 0.35 and parts:
            op = rng.choice(["<=", "<", ">=", ">", "=="])
            parts.append(f"(?t{op}{rng.choice([0, 1, 5, 10, 30])})")
            parts.append(f"(?{rng.randint(1, conds)})")
    return "".join(parts)


def sequence_case(rng, ch_name, our_name):
    conds = conditions(rng.randint(2, 4))
    pattern = random_pattern(rng, len(conds))
    ch = f"{ch_name}('{pattern}')(t, {', '.join(conds)})"
    ours = f"{our_name}('{pattern}', ts, {', '.join(conds)})"
    # ClickHouse orders equal times arbitrarily here: use distinct times
    return ch, ours, True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cases", type=int, default=400)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "goldens", "clickhouse.json"))
    a = p.parse_args()
    rng = random.Random(a.seed)
    makers = [
        (0.45, window_funnel_case),
        (0.15, retention_case),
        (0.2, lambda r: sequence_case(r, "sequenceMatch", "sequence_match")),
        (0.2, lambda r: sequence_case(r, "sequenceCount", "sequence_count")),
    ]
    cases = []
    while len(cases) < a.cases:
        x, maker = rng.random(), None
        for weight, m in makers:
            if x < weight:
                maker = m
                break
            x -= weight
        maker = maker or makers[-1][1]
        ch, ours, distinct = maker(rng)
        rows = random_rows(rng, distinct)
        sql = f"SELECT {ch} FROM {ch_values(rows)} FORMAT JSONCompact"
        try:
            answer = json.loads(chdb.query(sql, "JSONCompact").bytes() or b"{}")
        except Exception as e:  # a combination ClickHouse rejects is not a golden case
            continue
        value = answer["data"][0][0]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        cases.append({"rows": rows, "clickhouse": ch, "northstar": ours, "expected": value})
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"clickhouse_version": chdb.query("SELECT version()", "CSV").bytes().decode().strip().strip('"'),
                   "seed": a.seed, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {a.out}")


if __name__ == "__main__":
    main()
