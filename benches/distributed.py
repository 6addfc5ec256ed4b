"""Distributed benchmark driver (issue 7, run through benches/distributed.sh).

The same questions through the wire endpoint, once served by a single node and once by
`serve --ballista` on a Ballista cluster of 1 and then 2 executors (a scheduler and the
executors are child processes on 127.0.0.1; the data is the generated table in a local
directory, which every process on the machine shares). Each question runs `--runs` times per
setup on one connection; medians, answers compared with the single node's. Peak RSS is the
largest of the cluster's processes, read from /proc after the runs.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

from common import arg_parser, prepare

STEPS = ["app_open", "view_item", "add_to_cart", "purchase"]
QUESTIONS = {
    "4-step funnel, 1 day": "SELECT level, count(*) FROM (SELECT window_funnel(INTERVAL '1 day', event_time, "
    + ", ".join(f"event = '{e}'" for e in STEPS) + ") AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level",
    "retention day 1/7/30": "SELECT sum(r[1]), sum(r[2]), sum(r[3]), sum(r[4]) FROM (SELECT retention(event_date = DATE '2025-01-10', "
    "event_date = DATE '2025-01-11', event_date = DATE '2025-01-17', event_date = DATE '2025-02-09') AS r FROM events GROUP BY user_id)",
}


def free_port(pair=False):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def wait_for(path, needle, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and needle in open(path, errors="replace").read():
            return
        time.sleep(0.1)
    sys.exit(f"{path} never logged {needle!r}")


def peak_rss_mib(pids):
    peak = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except FileNotFoundError:
            pass
    return peak


def serve(ns, data, logs, extra):
    port = free_port()
    log = open(os.path.join(logs, f"serve-{port}.log"), "w")
    proc = subprocess.Popen([ns, "serve", "--data", data, "--listen", f"127.0.0.1:{port}"] + extra, stdout=subprocess.PIPE, stderr=log, text=True)
    proc.stdout.readline()
    return proc, port


def ask(port, runs):
    out = {}
    with psycopg.connect(f"host=127.0.0.1 port={port} user=northstar dbname=northstar", autocommit=True) as conn:
        for name, sql in QUESTIONS.items():
            times, rows = [], None
            for _ in range(runs):
                t = time.perf_counter()
                rows = conn.execute(sql).fetchall()
                times.append(time.perf_counter() - t)
            out[name] = (statistics.median(times), rows)
    return out


def main():
    p = arg_parser()
    p.add_argument("--executors", default="1,2", help="cluster sizes to measure")
    a = p.parse_args()
    ns = a.northstar
    _, data, _ = prepare(ns, a.events, a.work)
    logs = tempfile.mkdtemp(prefix="northstar-distributed-")
    single, port = serve(ns, data, logs, [])
    baseline = ask(port, a.runs)
    single_rss = peak_rss_mib([single.pid])
    single.terminate()
    results = [{"setup": "single node", **{k: round(v[0], 3) for k, v in baseline.items()}, "peak_rss_mib": round(single_rss)}]
    for n in [int(x) for x in a.executors.split(",")]:
        procs = []
        sched_port = free_port()
        sched_log = os.path.join(logs, f"scheduler-{sched_port}.log")
        env = dict(os.environ, NORTHSTAR_LOG="info")
        procs.append(subprocess.Popen([ns, "scheduler", "--listen", f"127.0.0.1:{sched_port}"], stderr=open(sched_log, "w"), stdout=subprocess.DEVNULL, env=env))
        wait_for(sched_log, "listening on")
        for i in range(n):
            port_i = free_port(pair=True)
            log = os.path.join(logs, f"executor-{sched_port}-{i}.log")
            procs.append(subprocess.Popen([ns, "executor", "--listen", f"127.0.0.1:{port_i}", "--scheduler", f"df://127.0.0.1:{sched_port}"],
                                          stderr=open(log, "w"), stdout=subprocess.DEVNULL, env=env))
            wait_for(log, "Starting poll work loop")
        cores = n * (os.cpu_count() or 1)
        server, port = serve(ns, data, logs, ["--ballista", f"df://127.0.0.1:{sched_port}", "--target-partitions", str(cores)])
        procs.append(server)
        answers = ask(port, a.runs)
        row = {"setup": f"Ballista, {n} executor(s)", **{k: round(v[0], 3) for k, v in answers.items()},
               "peak_rss_mib": round(peak_rss_mib([p.pid for p in procs])),
               "answers_equal": all(answers[k][1] == baseline[k][1] for k in QUESTIONS)}
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
    print(json.dumps({"events": a.events, "machine_cores": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
