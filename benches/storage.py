"""Storage benchmark driver (run through benches/storage.sh).

Every figure comes from a real run: wall time and peak RSS are read with /usr/bin/time, sizes
with a walk of the output directory, and row counts are checked against the generated file.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import timed
import time


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def query_csv(ns, data, sql):
    out = subprocess.run([ns, "query", "--data", data, "--format", "csv", sql], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[1]


def median_query_seconds(ns, data, sql, runs):
    times = [timed([ns, "query", "--data", data, "--format", "csv", sql])[0] for _ in range(runs)]
    return statistics.median(times), times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--northstar", required=True)
    p.add_argument("--events", type=int, default=int(os.environ.get("EVENTS", 20_000_000)))
    p.add_argument("--small-imports", type=int, default=int(os.environ.get("SMALL_IMPORTS", 200)))
    p.add_argument("--small-events", type=int, default=10_000)
    p.add_argument("--work", default=os.environ.get("WORK", os.path.join(tempfile.gettempdir(), "northstar-bench")))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--layouts", action="store_true", help="also compare Parquet layouts (compression level, row-group size)")
    a = p.parse_args()
    ns = a.northstar
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    src = os.path.join(a.work, "events.parquet")
    results = {"events": a.events, "cpus": os.cpu_count()}

    secs, rss, _ = timed([ns, "generate", "--events", str(a.events), "--out", src])
    results["generate_s"] = secs
    results["source_bytes"] = os.path.getsize(src)

    import duckdb
    con = duckdb.connect()
    want_rows, want_users = con.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{src}')").fetchall()[0]

    data = os.path.join(a.work, "data")
    secs, rss, _ = timed([ns, "import", "--data", data, src])
    results.update(import_s=secs, import_rss_mib=rss, import_rows_per_s=a.events / secs, table_bytes=dir_bytes(data))
    got_rows = int(query_csv(ns, data, "SELECT count(*) FROM events"))
    got_users = int(query_csv(ns, data, "SELECT count(DISTINCT user_id) FROM events"))
    assert (got_rows, got_users) == (want_rows, want_users), (got_rows, got_users, want_rows, want_users)
    results.update(rows=got_rows, users=got_users)

    duck_out = os.path.join(a.work, "duckdb-copy.parquet")
    script = f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_parquet('{src}')) TO '{duck_out}' (FORMAT parquet)\")"
    secs, rss, _ = timed([sys.executable, "-c", script])
    results.update(duckdb_copy_s=secs, duckdb_copy_rss_mib=rss, duckdb_rows_per_s=a.events / secs, duckdb_bytes=os.path.getsize(duck_out))

    group_by = "SELECT event, count(*) FROM events GROUP BY event"
    dau = "SELECT event_date, count(DISTINCT user_id) FROM events GROUP BY 1"
    per_user = "SELECT count(*) FROM (SELECT user_id, count(*) FROM events GROUP BY user_id)"
    results["group_by_big_import_s"], _ = median_query_seconds(ns, data, group_by, a.runs)

    # layout candidates: same source, one import each
    layouts = []
    for zstd, row_group in [(1, 1048576), (3, 1048576), (1, 131072), (6, 131072)]:
        if not a.layouts:
            break
        d = os.path.join(a.work, f"layout-z{zstd}-rg{row_group}")
        secs, rss, _ = timed([ns, "import", "--data", d, "--zstd-level", str(zstd), "--row-group-rows", str(row_group), src])
        row = dict(zstd=zstd, row_group=row_group, import_s=secs, import_rss_mib=rss, bytes=dir_bytes(d))
        for name, sql in [("group_by", group_by), ("dau", dau), ("per_user", per_user)]:
            row[name + "_s"] = median_query_seconds(ns, d, sql, 3)[0]
        optimize_s, optimize_rss, _ = timed([ns, "optimize", "--data", d, "--zstd-level", str(zstd), "--row-group-rows", str(row_group)])
        timed([ns, "vacuum", "--data", d, "--retention-hours", "0"])
        row.update(optimize_s=optimize_s, optimize_rss_mib=optimize_rss, optimized_bytes=dir_bytes(d))
        for name, sql in [("group_by", group_by), ("dau", dau), ("per_user", per_user)]:
            row[name + "_optimized_s"] = median_query_seconds(ns, d, sql, 3)[0]
        layouts.append(row)
        shutil.rmtree(d)
        print(json.dumps(row), file=sys.stderr)
    results["layouts"] = layouts

    # many small appends
    small = os.path.join(a.work, "small")
    small_file = os.path.join(a.work, "small.parquet")
    import_times = []
    for i in range(a.small_imports):
        subprocess.run([ns, "generate", "--events", str(a.small_events), "--seed", str(1000 + i), "--out", small_file], check=True, capture_output=True)
        import_times.append(timed([ns, "import", "--data", small, small_file])[0])
    results["small_import_median_s"] = statistics.median(import_times)
    results["small_import_last_s"] = import_times[-1]
    results["small_files_before"] = sum(1 for r, _, fs in os.walk(small) for f in fs if f.endswith(".parquet"))
    results["small_group_by_before_s"], results["small_group_by_before_all"] = median_query_seconds(ns, small, group_by, a.runs)
    before_answer = subprocess.run([ns, "query", "--data", small, "--format", "csv", group_by + " ORDER BY 1"], capture_output=True, text=True, check=True).stdout
    results["optimize_s"], results["optimize_rss_mib"], _ = timed([ns, "optimize", "--data", small])
    results["small_group_by_after_s"], results["small_group_by_after_all"] = median_query_seconds(ns, small, group_by, a.runs)
    after_answer = subprocess.run([ns, "query", "--data", small, "--format", "csv", group_by + " ORDER BY 1"], capture_output=True, text=True, check=True).stdout
    assert before_answer == after_answer
    timed([ns, "vacuum", "--data", small, "--retention-hours", "0"])
    results["small_files_after"] = sum(1 for r, _, fs in os.walk(small) for f in fs if f.endswith(".parquet"))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
