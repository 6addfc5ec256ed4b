#!/usr/bin/env bash
# Experiment benchmark: experiment(…) with four metrics and CUPED on N generated events with a
# planted A/B test, against the plain 4-step funnel on the same data. Results:
# docs/benchmarks.md.
#
#   benches/experiments.sh                 # 20M events
#   EVENTS=1000000 benches/experiments.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet --bin northstar
exec python3 benches/experiments.py --northstar "$CARGO_TARGET_DIR/release/northstar" "$@"
