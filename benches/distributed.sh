#!/usr/bin/env bash
# Distributed benchmark: the 20M-event funnel and retention through the wire endpoint on a
# single node and on a Ballista cluster of 1 and 2 executors on this machine, answers
# compared. EVENTS=1000000 for a quick run. Results: docs/distributed.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet --bin northstar
scripts/setup-test-env.sh >/dev/null
exec .venv/bin/python benches/distributed.py --northstar "$CARGO_TARGET_DIR/release/northstar" "$@"
