#!/usr/bin/env bash
# Behavioural-function benchmark: window_funnel, retention and sequence_count on N generated
# events in the events table, each against ClickHouse (chdb) over the same Parquet file in the
# same run, answers compared. Results: docs/benchmarks.md.
#
#   benches/functions.sh                 # 20M events
#   EVENTS=1000000 benches/functions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet
scripts/setup-bench-env.sh
exec .venv/bin/python benches/functions.py --northstar "$CARGO_TARGET_DIR/release/northstar" "$@"
