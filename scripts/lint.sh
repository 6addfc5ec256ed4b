#!/usr/bin/env bash
# The format and lint gate (run by .ci/run before the tests): one format, clippy without a
# warning on every target, and no import cycle between the files of a crate.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
cargo fmt --all --check
python3 scripts/check-module-cycles.py
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "lint gate passed: cargo fmt, module cycles, clippy -D warnings"
