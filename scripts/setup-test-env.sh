#!/usr/bin/env bash
# Installs what the tests need besides Rust: a Python venv (.venv) with the moto S3 server.
# Idempotent: a venv that already has everything is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moto.server, flask_cors" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
echo "test environment ready: $(.venv/bin/python -c 'import moto; print("moto", moto.__version__)')"
