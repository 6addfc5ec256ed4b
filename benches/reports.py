"""Report benchmark driver (run through benches/reports.sh).

Each report runs as `SELECT * FROM report(…)` and, separately, as the SQL it expands to (taken
from the report itself with NORTHSTAR_REPORT_SQL=1, i.e. the query an analyst would write by
hand with the behavioural functions), each `--runs` times in its own `northstar query`
process; medians, their ratio and whether the two answers are identical are reported.
"""

import json
import os
import statistics
import subprocess
import sys

from common import arg_parser, prepare, timed

REPORTS = {
    "funnel, 4 steps, 1 day, breakdown": "SELECT * FROM funnel(['app_open', 'view_item', 'add_to_cart', 'purchase'], 'window=1 day; breakdown=platform')",
    "retention, weekly, 8 periods": "SELECT * FROM retention('start=signup; period=week; periods=8')",
    "trends, daily DAU/WAU/MAU": "SELECT * FROM trends()",
    "lifecycle, weekly": "SELECT * FROM lifecycle('period=week')",
    "stickiness, monthly": "SELECT * FROM stickiness('period=month')",
    "paths, top 20": "SELECT * FROM paths('top=20')",
}


def main():
    p = arg_parser()
    p.add_argument("--only", default="", help="run only the reports whose name contains this")
    a = p.parse_args()
    ns = a.northstar
    _, data, _ = prepare(ns, a.events, a.work)
    results = []
    for name, call in REPORTS.items():
        if a.only not in name:
            continue
        shown = subprocess.run([ns, "query", "--data", data, "--format", "csv", call],
                               capture_output=True, text=True, env=dict(os.environ, NORTHSTAR_REPORT_SQL="1"), check=True)
        sql = shown.stderr.strip()
        report_runs = [timed([ns, "query", "--data", data, "--format", "csv", call]) for _ in range(a.runs)]
        sql_runs = [timed([ns, "query", "--data", data, "--format", "csv", sql]) for _ in range(a.runs)]
        report_s = statistics.median(r[0] for r in report_runs)
        sql_s = statistics.median(r[0] for r in sql_runs)
        results.append({
            "report": name, "report_s": report_s, "sql_s": sql_s, "ratio": report_s / sql_s,
            "report_rss_mib": max(r[1] for r in report_runs), "sql_rss_mib": max(r[1] for r in sql_runs),
            "answers_identical": report_runs[0][2] == sql_runs[0][2], "rows": report_runs[0][2].count("\n") - 1,
        })
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"events": a.events, "results": results}, indent=1))


if __name__ == "__main__":
    main()
