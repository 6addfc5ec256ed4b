#!/usr/bin/env bash
# Report benchmark: every report against the SQL it expands to, on N generated events
# (20M by default; EVENTS=1000000 for a quick run). Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet --bin northstar
exec python3 benches/reports.py --northstar "$CARGO_TARGET_DIR/release/northstar" "$@"
