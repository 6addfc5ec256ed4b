#!/usr/bin/env bash
# Storage benchmark: import throughput, bytes on disk and peak memory for N generated events,
# next to DuckDB's Parquet COPY of the same file; then a plain group-by after many small
# imports, before and after `northstar optimize`. Results: docs/storage.md.
#
#   benches/storage.sh                  # 20M events, 200 small imports
#   EVENTS=1000000 SMALL_IMPORTS=20 benches/storage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet
scripts/setup-bench-env.sh
exec .venv/bin/python benches/storage.py --northstar "$CARGO_TARGET_DIR/release/northstar" "$@"
