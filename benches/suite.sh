#!/usr/bin/env bash
# The macro benchmark suite: N generated events (20M by default; EVENTS=1000000 or
# EVENTS=100000000), the fixed product-analytics questions on Northstar, ClickHouse (chdb) and
# DuckDB over the same Parquet file, answers compared. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo build --release --quiet --bin northstar
scripts/setup-bench-env.sh
exec .venv/bin/python benches/suite.py --northstar "$CARGO_TARGET_DIR/release/northstar" --python .venv/bin/python "$@"
