"""Helpers shared by the benchmark drivers."""

import argparse
import os
import tempfile
import subprocess
import sys


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS in MiB, stdout)."""
    out = subprocess.run(["/usr/bin/time", "-f", "@@%e %M", "--"] + cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{out.stderr}")
    line = [l for l in out.stderr.splitlines() if l.startswith("@@")][-1]
    seconds, kib = line[2:].split()
    return float(seconds), int(kib) / 1024, out.stdout


def prepare(northstar, events, work, generate_args=(), tag=""):
    """The generated Parquet file and the Northstar data location for `events` events under
    `work` (generated with `generate_args`, named with `tag`), made if missing. Returns
    (parquet path, data path, import timing or None)."""
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, f"events{tag}-{events}.parquet")
    data = os.path.join(work, f"data{tag}-{events}")
    if not os.path.exists(src):
        subprocess.run([northstar, "generate", "--events", str(events), "--out", src, *generate_args], check=True)
    imported = None
    if not os.path.exists(data):
        seconds, rss, _ = timed([northstar, "import", "--data", data, src])
        imported = {"seconds": seconds, "peak_rss_mib": rss}
    return src, data, imported


def arg_parser():
    """The options every driver takes: the binary, the size, the work directory, the runs."""
    p = argparse.ArgumentParser()
    p.add_argument("--northstar", required=True)
    p.add_argument("--events", type=int, default=int(os.environ.get("EVENTS", 20_000_000)))
    p.add_argument("--work", default=os.environ.get("WORK", os.path.join(tempfile.gettempdir(), "northstar-bench-functions")))
    p.add_argument("--runs", type=int, default=3)
    return p
