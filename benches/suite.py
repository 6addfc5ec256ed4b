"""The macro benchmark suite (issue 6), run through benches/suite.sh.

Generates N events (parquet), imports them into Northstar, and asks the fixed set of
product-analytics questions of Northstar (`northstar query` on the Delta table), ClickHouse
(chdb) and DuckDB over the same Parquet file, each engine in its own process per run under
/usr/bin/time (wall time and peak RSS; ClickHouse and DuckDB are also timed in-process, their
library load excluded). Answers are normalised (dates as YYYY-MM-DD, numbers rounded to 6
digits) and compared. Prints one JSON document: medians, ratios to the best peer, peak RSS.
"""

import json
import statistics
import sys

from common import arg_parser, prepare, timed

STEPS = ["app_open", "view_item", "add_to_cart", "purchase"]


def questions(src):
    conds = ", ".join(f"event = '{e}'" for e in STEPS)
    ch = f"file('{src}', Parquet)"
    dk = f"read_parquet('{src}')"
    cohort = ["2025-01-10", "2025-01-11", "2025-01-17", "2025-02-09"]
    ret_ns = ", ".join(f"event_date = DATE '{d}'" for d in cohort)
    ret_ch = ", ".join(f"toDate(event_time) = toDate('{d}')" for d in cohort)
    return [
        ("DAU per day", {
            "northstar": "SELECT event_date, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1",
            "clickhouse": f"SELECT toDate(event_time) AS d, uniqExact(user_id) FROM {ch} GROUP BY d ORDER BY d",
            "duckdb": f"SELECT CAST(event_time AS DATE) AS d, count(DISTINCT user_id) FROM {dk} GROUP BY 1 ORDER BY 1",
        }),
        ("events by event x platform", {
            "northstar": "SELECT event, platform, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2",
            "clickhouse": f"SELECT event, platform, count() FROM {ch} GROUP BY event, platform ORDER BY event, platform",
            "duckdb": f"SELECT event, platform, count(*) FROM {dk} GROUP BY 1, 2 ORDER BY 1, 2",
        }),
        ("4-step funnel, 1 day", {
            "northstar": f"SELECT level, count(*) FROM (SELECT window_funnel(INTERVAL '1 day', event_time, {conds}) AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
            "clickhouse": f"SELECT level, count() FROM (SELECT windowFunnel(86400)(toDateTime(event_time), {conds}) AS level FROM {ch} GROUP BY user_id) GROUP BY level ORDER BY level",
        }),
        ("retention day 1/7/30", {
            "northstar": f"SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT retention({ret_ns}) AS r FROM events GROUP BY user_id)",
            "clickhouse": f"SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT retention({ret_ch}) AS r FROM {ch} GROUP BY user_id)",
        }),
        ("sequence_count with a time gate", {
            "northstar": "SELECT sum(c), count(*) FILTER (WHERE c > 0) FROM (SELECT sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS c FROM events GROUP BY user_id)",
            "clickhouse": f"SELECT sum(c), countIf(c > 0) FROM (SELECT sequenceCount('(?1)(?t<=3600)(?2)')(toDateTime(event_time), event = 'add_to_cart', event = 'purchase') AS c FROM {ch} GROUP BY user_id)",
        }),
        # Each engine's one-pass form: Northstar's cohort_periods, ClickHouse's groupUniqArray,
        # DuckDB's list(DISTINCT …); the two-pass join of the first runs was slower on all three.
        ("weekly cohort matrix", {
            "northstar": "SELECT cohort, CAST(k AS BIGINT) AS k, count(*) FROM (SELECT cohort, unnest(periods) AS k FROM "
                         "(SELECT CAST(date_trunc('week', min(event_time)) AS DATE) AS cohort, cohort_periods(event_time, 'week') AS periods "
                         "FROM events GROUP BY user_id)) GROUP BY cohort, k ORDER BY cohort, k",
            "clickhouse": f"SELECT c, intDiv(dateDiff('day', c, w), 7) AS k, count() FROM (SELECT toMonday(min(event_time)) AS c, "
                          f"groupUniqArray(toMonday(event_time)) AS ws FROM {ch} GROUP BY user_id) ARRAY JOIN ws AS w GROUP BY c, k ORDER BY c, k",
            "duckdb": f"SELECT CAST(c AS DATE), CAST(date_diff('day', c, w) / 7 AS BIGINT) AS k, count(*) FROM (SELECT date_trunc('week', min(event_time)) AS c, "
                      f"unnest(list(DISTINCT date_trunc('week', event_time))) AS w FROM {dk} GROUP BY user_id) GROUP BY 1, 2 ORDER BY 1, 2",
        }),
        # The forms an analyst writes by hand on the event time (issue 22): casts, date_trunc,
        # time ranges; Northstar reads them on UTC integer paths and prunes days by them.
        ("DAU per day, CAST(event_time AS DATE)", {
            "northstar": "SELECT CAST(event_time AS DATE) AS d, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1",
            "clickhouse": f"SELECT toDate(event_time) AS d, uniqExact(user_id) FROM {ch} GROUP BY d ORDER BY d",
            "duckdb": f"SELECT CAST(event_time AS DATE) AS d, count(DISTINCT user_id) FROM {dk} GROUP BY 1 ORDER BY 1",
        }),
        ("weekly active users, date_trunc('week', event_time)", {
            "northstar": "SELECT date_trunc('week', event_time) AS w, count(DISTINCT user_id) FROM events GROUP BY 1 ORDER BY 1",
            "clickhouse": f"SELECT toMonday(event_time) AS w, uniqExact(user_id) FROM {ch} GROUP BY w ORDER BY w",
            "duckdb": f"SELECT date_trunc('week', event_time) AS w, count(DISTINCT user_id) FROM {dk} GROUP BY 1 ORDER BY 1",
        }),
        ("events of one day, WHERE CAST(event_time AS DATE) =", {
            "northstar": "SELECT event, count(*) FROM events WHERE CAST(event_time AS DATE) = DATE '2025-02-01' GROUP BY 1 ORDER BY 1",
            "clickhouse": f"SELECT event, count() FROM {ch} WHERE toDate(event_time) = toDate('2025-02-01') GROUP BY event ORDER BY event",
            "duckdb": f"SELECT event, count(*) FROM {dk} WHERE CAST(event_time AS DATE) = DATE '2025-02-01' GROUP BY 1 ORDER BY 1",
        }),
        ("users of one week, event_time range", {
            "northstar": "SELECT count(DISTINCT user_id) FROM events WHERE event_time >= TIMESTAMP '2025-02-01 00:00:00Z' AND event_time < TIMESTAMP '2025-02-08 00:00:00Z'",
            "clickhouse": f"SELECT uniqExact(user_id) FROM {ch} WHERE event_time >= toDateTime64('2025-02-01 00:00:00', 6, 'UTC') AND event_time < toDateTime64('2025-02-08 00:00:00', 6, 'UTC')",
            "duckdb": f"SELECT count(DISTINCT user_id) FROM {dk} WHERE event_time >= TIMESTAMPTZ '2025-02-01 00:00:00+00' AND event_time < TIMESTAMPTZ '2025-02-08 00:00:00+00'",
        }),
        # The cohort matrix and sessions as an analyst writes them without Northstar's functions
        # (issue 22): a join of the events with each user's first week, and a window over each
        # user's events (ties in time give the same gap whichever row comes first).
        ("weekly cohort matrix, join with each user's first week", {
            "northstar": "WITH first_week AS (SELECT user_id, date_trunc('week', min(event_time)) AS cohort FROM events GROUP BY user_id) "
                         "SELECT CAST(f.cohort AS DATE) AS cohort, CAST(date_part('day', date_trunc('week', e.event_time) - f.cohort) / 7 AS BIGINT) AS week, "
                         "count(DISTINCT e.user_id) AS users FROM events e JOIN first_week f ON e.user_id = f.user_id GROUP BY 1, 2 ORDER BY 1, 2",
            "clickhouse": f"WITH first_week AS (SELECT user_id, toMonday(min(event_time)) AS cohort FROM {ch} GROUP BY user_id) "
                          f"SELECT f.cohort, intDiv(dateDiff('day', f.cohort, toMonday(e.event_time)), 7) AS week, uniqExact(e.user_id) "
                          f"FROM {ch} AS e INNER JOIN first_week AS f ON e.user_id = f.user_id GROUP BY 1, 2 ORDER BY 1, 2",
            "duckdb": f"WITH first_week AS (SELECT user_id, date_trunc('week', min(event_time)) AS cohort FROM {dk} GROUP BY user_id) "
                      f"SELECT CAST(f.cohort AS DATE), date_diff('day', f.cohort, date_trunc('week', e.event_time)) // 7 AS week, count(DISTINCT e.user_id) "
                      f"FROM {dk} e JOIN first_week f ON e.user_id = f.user_id GROUP BY 1, 2 ORDER BY 1, 2",
        }),
        ("sessions per day, lag over each user's events", {
            "northstar": "SELECT CAST(event_time AS DATE) AS d, count(*) AS sessions FROM (SELECT event_time, "
                         "event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM events) "
                         "WHERE gap IS NULL OR gap > INTERVAL '30 minutes' GROUP BY 1 ORDER BY 1",
            "clickhouse": f"SELECT toDate(event_time) AS d, count() FROM (SELECT event_time, lagInFrame(event_time, 1, toDateTime64(0, 6, 'UTC')) "
                          f"OVER (PARTITION BY user_id ORDER BY event_time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev FROM {ch}) "
                          f"WHERE prev = toDateTime64(0, 6, 'UTC') OR toUnixTimestamp64Micro(event_time) - toUnixTimestamp64Micro(prev) > 1800000000 GROUP BY d ORDER BY d",
            "duckdb": f"SELECT CAST(event_time AS DATE) AS d, count(*) FROM (SELECT event_time, "
                      f"event_time - lag(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS gap FROM {dk}) "
                      f"WHERE gap IS NULL OR gap > INTERVAL 30 MINUTE GROUP BY 1 ORDER BY 1",
        }),
        # ClickHouse has no per-step times (funnel_step_times), so the answers compared are the
        # counts and conversions; Northstar still computes the whole report, times included
        # (its finish computes every column and projects after).
        ("report: funnel", {
            "northstar": f"SELECT step, users, conversion_from_previous, conversion_from_first, drop_off FROM funnel({STEPS}, 'window=1 day')",
            "clickhouse": f"SELECT step, u[step] AS users, if(step = 1, if(u[1] > 0, 1, 0), if(u[step - 1] > 0, u[step] / u[step - 1], 0)), "
                          f"if(u[1] > 0, u[step] / u[1], 0), if(step = 1, 0, u[step - 1] - u[step]) "
                          f"FROM (SELECT [{', '.join(f'countIf(level >= {k})' for k in range(1, len(STEPS) + 1))}] AS u "
                          f"FROM (SELECT windowFunnel(86400)(toDateTime(event_time), {conds}) AS level FROM {ch} GROUP BY user_id)) "
                          f"ARRAY JOIN arrayEnumerate(u) AS step ORDER BY step",
        }),
        # Cohort: the week of a user's first sign-up; retained in week k: any event in it.
        # Both peers in one pass per user (the week set), as their manuals suggest.
        ("report: retention", {
            "northstar": "SELECT * FROM retention('start=signup; period=week; periods=8')",
            "clickhouse": f"WITH users AS (SELECT toMonday(minIf(event_time, event = 'signup')) AS cohort, groupUniqArray(toMonday(event_time)) AS ws "
                          f"FROM {ch} GROUP BY user_id HAVING countIf(event = 'signup') > 0), "
                          f"cohorts AS (SELECT cohort, count() AS size, sumForEach(arrayMap(k -> toUInt64(has(ws, addDays(cohort, 7 * k))), range(9))) AS kept FROM users GROUP BY cohort) "
                          f"SELECT cohort, size, k, kept[k + 1] AS retained, retained / size FROM cohorts ARRAY JOIN range(9) AS k "
                          f"WHERE k <= intDiv(dateDiff('day', cohort, (SELECT toMonday(max(event_time)) FROM {ch})), 7) ORDER BY cohort, k",
            "duckdb": f"WITH u AS (SELECT date_trunc('week', min(event_time) FILTER (WHERE event = 'signup')) AS cohort, list(DISTINCT date_trunc('week', event_time)) AS ws "
                      f"FROM {dk} GROUP BY user_id HAVING count(*) FILTER (WHERE event = 'signup') > 0), "
                      f"sizes AS (SELECT cohort, count(*) AS size FROM u GROUP BY 1), "
                      f"hits AS (SELECT cohort, date_diff('day', cohort, w) // 7 AS k, count(*) AS n FROM (SELECT cohort, unnest(ws) AS w FROM u) WHERE w >= cohort GROUP BY 1, 2), "
                      f"last AS (SELECT date_trunc('week', max(event_time)) AS l FROM {dk}) "
                      f"SELECT CAST(s.cohort AS DATE), s.size, g.k, coalesce(h.n, 0), coalesce(h.n, 0) / s.size FROM sizes s CROSS JOIN range(9) g(k) CROSS JOIN last "
                      f"LEFT JOIN hits h ON h.cohort = s.cohort AND h.k = g.k WHERE date_diff('day', s.cohort, l) // 7 >= g.k ORDER BY 1, 3",
        }),
        # The reports against the same report written by hand for ClickHouse (issue 22).
        ("report: trends", {
            "northstar": "SELECT * FROM trends()",
            # ClickHouse's idiom for rolling distinct counts: per-day uniqExact states merged
            # over a window (the DISTINCT (user, day) × range(30) form took 60 s here).
            "clickhouse": f"SELECT d, '' AS breakdown, events, finalizeAggregation(s) AS dau, "
                          f"uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 6 PRECEDING AND CURRENT ROW) AS wau, "
                          f"uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 29 PRECEDING AND CURRENT ROW) AS mau "
                          f"FROM (SELECT toDate(event_time) AS d, count() AS events, uniqExactState(user_id) AS s FROM {ch} GROUP BY d) ORDER BY d",
            "duckdb": f"WITH ud AS (SELECT DISTINCT user_id, CAST(event_time AS DATE) AS d FROM {dk}), "
                      f"p AS (SELECT CAST(event_time AS DATE) AS d, count(*) AS events, count(DISTINCT user_id) AS dau FROM {dk} GROUP BY 1), "
                      f"w AS (SELECT d + CAST(k AS INTEGER) AS d, count(DISTINCT user_id) AS n FROM ud, range(7) t(k) GROUP BY 1), "
                      f"m AS (SELECT d + CAST(k AS INTEGER) AS d, count(DISTINCT user_id) AS n FROM ud, range(30) t(k) GROUP BY 1) "
                      f"SELECT p.d, '' AS breakdown, p.events, p.dau, w.n, m.n FROM p LEFT JOIN w USING (d) LEFT JOIN m USING (d) ORDER BY p.d",
        }),
        ("report: lifecycle", {
            "northstar": "SELECT * FROM lifecycle('period=week')",
            "clickhouse": f"WITH weeks AS (SELECT user_id, arraySort(groupUniqArray(toMonday(event_time))) AS ws FROM {ch} GROUP BY user_id) "
                          f"SELECT p, status, sum(n) AS users FROM ("
                          f"SELECT w AS p, if(i = 1, 'new', if(ws[i - 1] = w - 7, 'returning', 'resurrecting')) AS status, 1 AS n "
                          f"FROM weeks ARRAY JOIN ws AS w, arrayEnumerate(ws) AS i "
                          f"UNION ALL SELECT w + 7 AS p, 'dormant' AS status, -1 AS n FROM weeks ARRAY JOIN ws AS w, arrayEnumerate(ws) AS i "
                          f"WHERE i = length(ws) OR ws[i + 1] != w + 7) "
                          f"WHERE p IN (SELECT DISTINCT toMonday(event_time) FROM {ch}) GROUP BY p, status "
                          f"ORDER BY p, multiIf(status = 'new', 1, status = 'returning', 2, status = 'resurrecting', 3, 4)",
            "duckdb": f"WITH uw AS (SELECT DISTINCT user_id, CAST(date_trunc('week', event_time) AS DATE) AS w FROM {dk}), "
                      f"s AS (SELECT w, lag(w) OVER (PARTITION BY user_id ORDER BY w) AS prev, lead(w) OVER (PARTITION BY user_id ORDER BY w) AS nxt FROM uw), "
                      f"c AS (SELECT w AS p, CASE WHEN prev IS NULL THEN 'new' WHEN prev = w - 7 THEN 'returning' ELSE 'resurrecting' END AS status, 1 AS n FROM s "
                      f"UNION ALL SELECT w + 7 AS p, 'dormant' AS status, -1 AS n FROM s WHERE nxt IS NULL OR nxt <> w + 7) "
                      f"SELECT p, status, sum(n) FROM c WHERE p IN (SELECT DISTINCT CAST(date_trunc('week', event_time) AS DATE) FROM {dk}) GROUP BY p, status "
                      f"ORDER BY p, CASE status WHEN 'new' THEN 1 WHEN 'returning' THEN 2 WHEN 'resurrecting' THEN 3 ELSE 4 END",
        }),
        ("report: stickiness", {
            "northstar": "SELECT * FROM stickiness('period=month')",
            "clickhouse": f"SELECT m, d, count() FROM (SELECT user_id, toStartOfMonth(event_time) AS m, uniqExact(toDate(event_time)) AS d "
                          f"FROM {ch} GROUP BY user_id, m) GROUP BY m, d ORDER BY m, d",
            "duckdb": f"SELECT m, d, count(*) FROM (SELECT user_id, CAST(date_trunc('month', event_time) AS DATE) AS m, "
                      f"count(DISTINCT CAST(event_time AS DATE)) AS d FROM {dk} GROUP BY 1, 2) GROUP BY 1, 2 ORDER BY 1, 2",
        }),
        # Sessions split where the next event is more than 30 minutes later; repeats collapse,
        # so a transition is a consecutive pair (ordered by time, then event) of different
        # events within 30 minutes.
        ("report: paths", {
            "northstar": "SELECT * FROM paths('top=20')",
            "clickhouse": f"SELECT a.2 AS f, b.2 AS t, count() AS transitions, uniqExact(user_id) AS users FROM "
                          f"(SELECT user_id, arraySort(groupArray((toUnixTimestamp64Micro(event_time), event))) AS e FROM {ch} GROUP BY user_id) "
                          f"ARRAY JOIN arrayPopBack(e) AS a, arrayPopFront(e) AS b WHERE a.2 != b.2 AND b.1 - a.1 <= 1800000000 "
                          f"GROUP BY f, t ORDER BY transitions DESC, f, t LIMIT 20",
            "duckdb": f"SELECT prev, event, count(*) AS transitions, count(DISTINCT user_id) AS users FROM "
                      f"(SELECT user_id, event, event_time, lag(event) OVER w AS prev, lag(event_time) OVER w AS prev_time FROM {dk} "
                      f"WINDOW w AS (PARTITION BY user_id ORDER BY event_time, event)) "
                      f"WHERE prev <> event AND event_time - prev_time <= INTERVAL 30 MINUTES "
                      f"GROUP BY 1, 2 ORDER BY transitions DESC, prev, event LIMIT 20",
        }),
    ]


def normalise(text, header):
    """CSV text → rows of normalised cells; `header`: the first line names the columns."""
    out = []
    for line in text.strip().splitlines():
        if not line or line.startswith("##"):
            continue
        cells = []
        for cell in line.replace('"', "").split(","):
            cell = cell.strip()
            if len(cell) >= 10 and cell[4] == "-" and cell[7] == "-":
                cell = cell[:10]
            else:
                try:
                    cell = repr(round(float(cell), 6))
                except ValueError:
                    pass
            cells.append(cell)
        out.append(cells)
    return out[1:] if header else out


def peer_script(engine, sql):
    if engine == "clickhouse":
        run = f"import chdb; r = chdb.query({sql!r}, 'CSV').bytes().decode()"
    else:
        run = (f"import duckdb; c = duckdb.connect(); c.execute(\"SET TimeZone = 'UTC'\"); c.execute('SET enable_progress_bar = false'); "
               f"rows = c.execute({sql!r}).fetchall(); r = '\\n'.join(','.join(str(v) for v in row) for row in rows)")
    return f"import sys, time; t = time.perf_counter(); {run}; sys.stdout.write(r + f'\\n##{{time.perf_counter() - t}}\\n')"


def main():
    p = arg_parser()
    p.add_argument("--python", default=sys.executable, help="a Python with chdb and duckdb")
    p.add_argument("--only", default="", help="ask only the questions whose name contains this")
    p.add_argument("--engines", default="northstar,clickhouse,duckdb", help="the engines to ask (e.g. leave DuckDB out at 100M)")
    a = p.parse_args()
    ns = a.northstar
    src, data, imported = prepare(ns, a.events, a.work)
    results = []
    for name, sqls in questions(src):
        if a.only not in name:
            continue
        row = {"question": name}
        answers = {}
        for engine, sql in sqls.items():
            if engine not in a.engines.split(","):
                continue
            if engine == "northstar":
                runs = [timed([ns, "query", "--data", data, "--format", "csv", sql]) for _ in range(a.runs)]
                row["northstar_s"] = statistics.median(r[0] for r in runs)
            else:
                runs = [timed([a.python, "-c", peer_script(engine, sql)]) for _ in range(a.runs)]
                row[f"{engine}_s"] = statistics.median(float(r[2].rsplit("##", 1)[1]) for r in runs)
                row[f"{engine}_process_s"] = statistics.median(r[0] for r in runs)
            row[f"{engine}_rss_mib"] = max(r[1] for r in runs)
            answers[engine] = normalise(runs[0][2], header=engine == "northstar")
        peers = [row[f"{e}_s"] for e in ("clickhouse", "duckdb") if f"{e}_s" in row]
        if peers:
            row["ratio_to_best_peer"] = row["northstar_s"] / min(peers)
            row["answers_agree"] = all(v == answers["northstar"] for v in answers.values())
            if not row["answers_agree"]:
                row["answers"] = {k: v[:5] for k, v in answers.items()}
        row["rows"] = len(answers["northstar"])
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"events": a.events, "import": imported, "results": results}, indent=1))


if __name__ == "__main__":
    main()
