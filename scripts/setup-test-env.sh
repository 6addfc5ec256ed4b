#!/usr/bin/env bash
# Installs what the tests need besides Rust: a Python venv (.venv) with the moto S3 server,
# psycopg 3, psycopg2, SQLAlchemy 2, pandas, dbt-postgres, asyncpg, pyodbc, pgcli and the Segment,
# RudderStack and PostHog Python SDKs; Superset 6.1
# with SQLAlchemy 1.4 in .venv-superset; the Node SDKs
# posthog-js with playwright-core, and node-postgres with pg-cursor (tests/sdks, from npm, as locked); and, from Debian's
# packages, psql, a PostgreSQL server (client checks run against it too), the pgjdbc driver,
# psqlODBC with unixODBC (pyodbc in .venv drives it), a
# Java runtime, Node.js, Chromium (posthog-js in a browser) and openssl.
# Idempotent: what is already there is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v psql >/dev/null || missing+=(postgresql-client)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1 || missing+=(unixodbc odbc-postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moto.server, flask_cors, psycopg, psycopg2, sqlalchemy, segment.analytics, rudderstack.analytics, posthog, dbt.adapters.postgres, asyncpg, pyodbc, pgcli, polars, connectorx, pyarrow, adbc_driver_postgresql.dbapi" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
# Superset 6.1 pins SQLAlchemy 1.4: it gets a venv of its own (the client suite runs in both).
if [ ! -x .venv-superset/bin/python ]; then
  python3 -m venv .venv-superset
fi
if ! .venv-superset/bin/python -c "import superset, psycopg, psycopg2" 2>/dev/null; then
  .venv-superset/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-superset.txt
fi
if [ ! -d tests/sdks/node_modules/posthog-node ] || [ ! -d tests/sdks/node_modules/playwright-core ] || [ ! -d tests/sdks/node_modules/pg-cursor ]; then
  (cd tests/sdks && npm ci --no-audit --no-fund --silent)
fi
echo "test environment ready: $(.venv/bin/python -c 'import moto; print("moto", moto.__version__)')"
