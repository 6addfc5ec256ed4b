#!/usr/bin/env bash
# Installs the benchmark peers (DuckDB and chdb, ClickHouse embedded, from PyPI) into the project's venv (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-env.sh >/dev/null
if ! .venv/bin/python -c "import duckdb, chdb, pytz" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
fi
echo "bench environment ready: $(.venv/bin/python -c 'import duckdb; print("duckdb", duckdb.__version__)')" >&2
