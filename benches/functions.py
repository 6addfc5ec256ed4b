"""Behavioural-function benchmark driver (run through benches/functions.sh).

Northstar runs as `northstar query` on the imported Delta table; ClickHouse runs as chdb on
the generated Parquet file, each in its own process under /usr/bin/time (wall time, peak
RSS). Every query runs `--runs` times; the median is reported. Answers must agree.
ClickHouse's windowFunnel and sequenceCount take DateTime (seconds), so its queries convert
with toDateTime; the generated events of a user are seconds apart, so the answers are the same.
"""

import json
import statistics
import sys

from common import arg_parser, prepare, timed

FUNNEL_STEPS = ["app_open", "view_item", "add_to_cart", "purchase"]


def queries(src):
    conds = ", ".join(f"event = '{e}'" for e in FUNNEL_STEPS)
    ch_src = f"file('{src}', Parquet)"
    cohort = ["2025-01-10", "2025-01-11", "2025-01-17", "2025-02-09"]
    ret_ours = ", ".join(f"event_date = DATE '{d}'" for d in cohort)
    ret_ch = ", ".join(f"toDate(event_time) = toDate('{d}')" for d in cohort)
    return {
        "window_funnel, 4 steps, 1 day": (
            f"SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '1 day', event_time, {conds}) AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
            f"SELECT level, count() AS users FROM (SELECT user_id, windowFunnel(86400)(toDateTime(event_time), {conds}) AS level FROM {ch_src} GROUP BY user_id) GROUP BY level ORDER BY level",
        ),
        "retention day 1/7/30": (
            f"SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT user_id, retention({ret_ours}) AS r FROM events GROUP BY user_id)",
            f"SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT user_id, retention({ret_ch}) AS r FROM {ch_src} GROUP BY user_id)",
        ),
        "sequence_count (?1)(?t<=3600)(?2)": (
            "SELECT sum(c), count(*) FILTER (WHERE c > 0) FROM (SELECT user_id, sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS c FROM events GROUP BY user_id)",
            f"SELECT sum(c), countIf(c > 0) FROM (SELECT user_id, sequenceCount('(?1)(?t<=3600)(?2)')(toDateTime(event_time), event = 'add_to_cart', event = 'purchase') AS c FROM {ch_src} GROUP BY user_id)",
        ),
    }


def rows(text):
    """CSV text → list of rows of numbers (header dropped when present)."""
    lines = [l for l in text.strip().splitlines() if l and not l.startswith("##")]
    if lines and not lines[0][0].isdigit() and not lines[0][0] == '-':
        lines = lines[1:]
    return [[float(x) for x in l.replace('"', "").split(",")] for l in lines]


def main():
    p = arg_parser()
    a = p.parse_args()
    ns = a.northstar
    src, data, _ = prepare(ns, a.events, a.work)
    results = []
    for name, (ours, theirs) in queries(src).items():
        ns_runs = [timed([ns, "query", "--data", data, "--format", "csv", ours]) for _ in range(a.runs)]
        # ClickHouse is timed in-process (its library load excluded), Northstar as a whole
        # process (start-up and table open included): the comparison favours ClickHouse.
        ch_script = (f"import chdb, sys, time; t = time.perf_counter(); r = chdb.query({theirs!r}, 'CSV').bytes().decode(); "
                     "sys.stdout.write(r + f'##{time.perf_counter() - t}\\n')")
        ch_runs = [timed([sys.executable, "-c", ch_script]) for _ in range(a.runs)]
        ns_answer, ch_answer = rows(ns_runs[0][2]), rows(ch_runs[0][2])
        ns_s = statistics.median(r[0] for r in ns_runs)
        ch_s = statistics.median(float(r[2].rsplit("##", 1)[1]) for r in ch_runs)
        ch_process_s = statistics.median(r[0] for r in ch_runs)
        results.append({
            "query": name,
            "northstar_s": ns_s, "northstar_rss_mib": max(r[1] for r in ns_runs),
            "clickhouse_s": ch_s, "clickhouse_process_s": ch_process_s, "clickhouse_rss_mib": max(r[1] for r in ch_runs),
            "ratio": ns_s / ch_s, "northstar_events_per_s": a.events / ns_s,
            "answers_agree": ns_answer == ch_answer,
            "northstar_answer": ns_answer, "clickhouse_answer": ch_answer,
        })
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"events": a.events, "results": results}, indent=1))


if __name__ == "__main__":
    main()
