"""Helpers shared by the benchmark drivers."""

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
