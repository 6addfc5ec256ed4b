#!/usr/bin/env bash
# Wire-protocol benchmark: Northstar's PostgreSQL endpoint next to a PostgreSQL 15 server
# (Debian's postgresql-15) on the same machine, the same data and the same client code
# (benches/wire.rs, tokio-postgres):
#   - rows/s streaming a 10M-row result (event_time, user_id, event, session_id), binary rows
#     (extended protocol) and text rows (simple protocol);
#   - p50/p99 latency and throughput of a small parameterised query with 16 concurrent clients
#     (purchases on one day: partition pruning in Northstar, a b-tree index in PostgreSQL).
# Results: docs/benchmarks.md.
#
#   benches/wire.sh                   # 10M events
#   EVENTS=1000000 SECONDS_PER_RUN=5 benches/wire.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
EVENTS="${EVENTS:-10000000}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}"
WORK="${WORK:-/tmp/northstar-wire-bench}"
NS_PORT=55433
PG_PORT=55432
PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/postgres" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq postgresql-15 >/dev/null
fi
cargo build --release --quiet --bin northstar
cargo bench --quiet --bench wire --no-run 2>/dev/null
WIRE=$(ls -t "$CARGO_TARGET_DIR"/release/deps/wire-* | grep -v '\.d$' | head -1)
NS="$CARGO_TARGET_DIR/release/northstar"
mkdir -p "$WORK"

if [ ! -f "$WORK/imported-$EVENTS" ]; then
  rm -rf "$WORK/data" "$WORK/pg" "$WORK"/imported-*
  "$NS" generate --events "$EVENTS" --out "$WORK/events.parquet"
  "$NS" import --data "$WORK/data" "$WORK/events.parquet"
  touch "$WORK/imported-$EVENTS"
fi

"$NS" serve --data "$WORK/data" --listen "127.0.0.1:$NS_PORT" > "$WORK/northstar.log" 2>&1 &
NS_PID=$!
# PostgreSQL refuses to run as root: its cluster belongs to the postgres user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill "$NS_PID" 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ ! -d "$WORK/pg" ]; then
  mkdir -p "$WORK/pg" && [ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg" "$WORK"
  as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
fi
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c shared_buffers=2GB -c max_connections=50" -l "$WORK/pg/server.log" -w start >/dev/null
for _ in $(seq 300); do grep -q "listening on" "$WORK/northstar.log" && break; sleep 0.2; done
PG="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
NORTHSTAR="host=127.0.0.1 port=$NS_PORT user=northstar dbname=northstar"
if [ ! -f "$WORK/pg-loaded-$EVENTS" ]; then
  echo "loading $EVENTS events into PostgreSQL (COPY out of Northstar, COPY into PostgreSQL) …" >&2
  psql -X -q "$PG" -c "DROP TABLE IF EXISTS events" -c "CREATE TABLE events (event_time timestamptz NOT NULL, user_id text NOT NULL, event text NOT NULL, session_id text, properties text, event_date date NOT NULL)"
  psql -X -q "$NORTHSTAR" -c "\\copy (SELECT event_time, user_id, event, session_id, properties, event_date FROM events) to stdout" \
    | psql -X -q "$PG" -c "\\copy events from stdin"
  psql -X -q "$PG" -c "CREATE INDEX ON events (event_date)" -c "VACUUM ANALYZE events"
  touch "$WORK/pg-loaded-$EVENTS"
fi

STREAM="SELECT event_time, user_id, event, session_id FROM events LIMIT $EVENTS"
SMALL="SELECT count(*) FROM events WHERE event_date = \$1 AND event = 'purchase'"
COMMIT=$(git rev-parse --short HEAD)
for target in northstar postgresql; do
  url=$NORTHSTAR; [ "$target" = postgresql ] && url=$PG
  result=$("$WIRE" --url "$url" --stream-sql "$STREAM" --small-sql "$SMALL" --clients 16 --seconds "$SECONDS_PER_RUN")
  echo "{\"target\": \"$target\", \"events\": $EVENTS, \"commit\": \"$COMMIT\", ${result:1}"
done
