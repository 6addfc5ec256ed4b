#!/usr/bin/env bash
# The test command: installs the test environment, then runs every test of the workspace.
# Builds into one shared target directory so repeated runs (and the demo) reuse artefacts.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
scripts/setup-test-env.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
