"""Experiment benchmark driver (run through benches/experiments.sh).

On N generated events over 30 days with an A/B test planted from day 10 and the flag called as
the app opens (so that most users are exposed: 500k+ at 20M events), three variants
(control, test +15 %, test_b 0 %), `experiment(…)` with four metrics and CUPED runs against
the plain 4-step funnel on the same data (the window_funnel query an analyst writes, and the
funnel report), each `--runs` times in its own `northstar query` process under /usr/bin/time
(wall time, peak RSS); medians are reported. The issue's goal: the experiment within 2 × the
plain funnel query.
"""

import csv
import io
import json
import statistics
import sys

from common import arg_parser, prepare, timed

EXPERIMENT = "checkout-redesign:control=0,test=0.15,test_b=0;start=10;at=app_open"
STEPS = ["app_open", "view_item", "add_to_cart", "purchase"]
METRICS = [
    "conversion: view_item, add_to_cart, purchase; name=ordered",
    "count: purchase; name=orders per user",
    "sum: json_get_float(properties, ''price''); event=purchase; winsorize=0.99; name=revenue per user",
    "ratio: json_get_float(properties, ''price''); event=purchase; denominator=1; denominator_event=purchase; name=order value",
]


def queries():
    conds = ", ".join(f"event = '{e}'" for e in STEPS)
    metrics = ", ".join(f"'{m}'" for m in METRICS)
    return {
        "experiment: 4 metrics, 3 variants, CUPED": f"SELECT metric, variant, users, value, relative_lift, ci_low, ci_high, p_value, chance_to_win, srm_p_value FROM experiment([{metrics}], 'flag=checkout-redesign; window=7 days; cuped=on')",
        "experiment: 4 metrics, 3 variants, no CUPED": f"SELECT metric, variant, users, value, relative_lift, ci_low, ci_high, p_value, chance_to_win, srm_p_value FROM experiment([{metrics}], 'flag=checkout-redesign; window=7 days')",
        "plain 4-step funnel query (window_funnel)": f"SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '1 day', event_time, {conds}) AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
        "funnel report, 4 steps": "SELECT * FROM funnel([" + ", ".join(f"'{e}'" for e in STEPS) + "], 'window=1 day')",
    }


def main():
    p = arg_parser()
    a = p.parse_args()
    ns = a.northstar
    _, data, imported = prepare(ns, a.events, a.work, ["--days", "30", "--experiment", EXPERIMENT], "-experiment")
    results = {}
    for name, sql in queries().items():
        runs = [timed([ns, "query", "--data", data, "--format", "csv", sql]) for _ in range(a.runs)]
        results[name] = {
            "seconds": statistics.median(r[0] for r in runs),
            "runs": [r[0] for r in runs],
            "peak_rss_mib": max(r[1] for r in runs),
            "answer": runs[0][2],
        }
        print(json.dumps({name: {k: v for k, v in results[name].items() if k != "answer"}}), file=sys.stderr)
    answer = list(csv.DictReader(io.StringIO(results["experiment: 4 metrics, 3 variants, CUPED"]["answer"])))
    exposed = sum(int(r["users"]) for r in answer if r["metric"] == "ordered")
    plain = results["plain 4-step funnel query (window_funnel)"]["seconds"]
    print(json.dumps({
        "events": a.events,
        "imported": imported,
        "exposed_users": exposed,
        "results": {k: {x: y for x, y in v.items() if x != "answer"} for k, v in results.items()},
        "ratio_to_plain_funnel": {k: v["seconds"] / plain for k, v in results.items()},
        "experiment_answer": answer,
    }, indent=1))


if __name__ == "__main__":
    main()
