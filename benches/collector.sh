#!/usr/bin/env bash
# The HTTP collector under load (docs/benchmarks.md, "HTTP collector"): 16 senders with up to
# 128 batches each in flight (CONNECTIONS=2048 wrk connections, one request in flight each; a
# sender that waits for each answer is CONNECTIONS=16) post PostHog batches of 100 events for
# DURATION seconds to a release
# `northstar serve --http`; then the time from an acknowledgement to the event being
# queryable over the wire endpoint, the table's file count, and the 4-step funnel on the
# streamed table (right after the stream, and after the next background compaction) against
# the same rows bulk-imported.
# Usage: benches/collector.sh [DURATION_SECONDS=300] [WORK_DIR=/tmp/nsbench-collector]
# (SERVE_FLAGS adds flags to `serve`, e.g. SERVE_FLAGS="--max-commit-events 50000".)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-300}"
work="${2:-/tmp/nsbench-collector}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
if [ -z "${NORTHSTAR:-}" ]; then cargo build --release --quiet; fi
bin="${NORTHSTAR:-$CARGO_TARGET_DIR/release/northstar}"
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq wrk >/dev/null; }
command -v psql >/dev/null || scripts/setup-test-env.sh >/dev/null
connections="${CONNECTIONS:-2048}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rm -rf "$work" && mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg=$(free_port); http=$(free_port)
# shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
"$bin" serve --data "$work/streamed" --listen "127.0.0.1:$pg" --http "127.0.0.1:$http" ${SERVE_FLAGS:-} > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "collecting on" "$work/serve.log" && break; sleep 0.1; done
echo "== $duration s, $connections connections, batches of 100 events (commit $(git rev-parse --short HEAD)${SERVE_FLAGS:+, serve $SERVE_FLAGS})"
wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s --latency -s benches/collector_load.lua "http://127.0.0.1:$http/batch/" | tee "$work/wrk.txt"
curl -s "http://127.0.0.1:$http/metrics" > "$work/metrics.txt"
grep -E "^northstar_collector_(events_committed_total|events_rejected_total|commits_total|compactions_total|events_duplicate_total) " "$work/metrics.txt"

echo "== acknowledgement to queryable over the wire endpoint (5 samples)"
for i in 1 2 3 4 5; do
  start=$(date +%s.%N)
  curl -s -o /dev/null -d "{\"event\":\"marker\",\"distinct_id\":\"m\",\"uuid\":\"marker-$i\"}" "http://127.0.0.1:$http/capture/"
  acked=$(date +%s.%N)
  until [ "$(psql -h 127.0.0.1 -p "$pg" -U northstar -d northstar -Atc "SELECT count(*) FROM events WHERE message_id = 'marker-$i'")" = "1" ]; do sleep 0.02; done
  seen=$(date +%s.%N)
  python3 -c "print(f'ack {($acked-$start)*1000:.0f} ms, ack to queryable {($seen-$acked)*1000:.0f} ms')"
  sleep 0.5
done
echo "== table after streaming: $(curl -s "http://127.0.0.1:$http/health")"
funnel="SELECT level, count(*) AS users FROM (SELECT user_id, window_funnel(INTERVAL '1 day', event_time, event = 'signup', event = 'view_item', event = 'add_to_cart', event = 'purchase') AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level"
time_funnel() { # data directory -> three whole-process timings
  local times=()
  for _ in 1 2 3; do
    start=$(date +%s.%N); "$bin" query --data "$1" "$funnel" >/dev/null; end=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$end-$start:.2f}')")")
  done
  echo "${times[*]}"
}
echo "funnel right after the stream: $(time_funnel "$work/streamed") s"
# Under a load that keeps both cores busy, compaction may lag the last minute's commits; this
# is the table once the next pass after the stream has committed (waits at most 300 s).
compactions() { curl -s "http://127.0.0.1:$http/metrics" | awk '/^northstar_collector_compactions_total /{print $2}'; }
# Passes counted from the end of the stream: one may finish during the samples above.
before=$(awk '/^northstar_collector_compactions_total /{print $2}' "$work/metrics.txt"); waited=0
while [ "$(compactions)" = "$before" ] && [ $waited -lt 300 ]; do sleep 1; waited=$((waited + 1)); done
echo "== after the next compaction pass (${waited} s later): $(curl -s "http://127.0.0.1:$http/health")"
kill $server; wait $server 2>/dev/null || true; trap - EXIT

echo "== the same rows bulk-imported"
"$bin" query --data "$work/streamed" "COPY (SELECT event_time, user_id, event, session_id, properties FROM events) TO '$work/streamed.parquet' STORED AS PARQUET" >/dev/null
/usr/bin/time -f "import: %e s" "$bin" import --data "$work/bulk" "$work/streamed.parquet" 2>&1 | tail -1
for table in streamed bulk; do
  "$bin" query --data "$work/$table" "$funnel" > "$work/$table-funnel.txt"
  rows=$("$bin" query --data "$work/$table" --format csv "SELECT count(*) FROM events" | tail -1)
  echo "$table: $rows rows, funnel $(time_funnel "$work/$table") s"
done
cmp "$work/streamed-funnel.txt" "$work/bulk-funnel.txt" && echo "funnel answers identical"
