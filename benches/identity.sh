#!/usr/bin/env bash
# Identity resolution (docs/benchmarks.md, "Persons"): EVENTS generated events where a share of
# users start anonymous and sign in later, some on two devices (`generate --identities`); the
# 4-step funnel by=person against by=user (the report, and the hand-written window_funnel over
# person_id against user_id), 3 runs each, each a whole `northstar query` process; and the time
# to bring the persons up to date after importing 1M more events.
# With ACCOUNTS > 0 users belong to that many accounts (`generate --accounts`), and the derived
# `persons` table, a funnel by=company and a funnel broken down by a person property are timed.
# Usage: benches/identity.sh [EVENTS=20000000] [SHARE=0.3] [WORK_DIR=/tmp/nsbench-identity] [ACCOUNTS=5000]
# (RUNS sets the timed runs per query, default 3.)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-20000000}"
share="${2:-0.3}"
work="${3:-/tmp/nsbench-identity}"
accounts="${4:-5000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/northstar-target}"
if [ -z "${NORTHSTAR:-}" ]; then cargo build --release --quiet; fi
bin="${NORTHSTAR:-$CARGO_TARGET_DIR/release/northstar}"
rm -rf "$work" && mkdir -p "$work"
echo "== $events events, --identities $share --accounts $accounts (commit $(git rev-parse --short HEAD))"
"$bin" generate --events "$events" --identities "$share" --accounts "$accounts" --seed 1 --out "$work/events.parquet" 2>&1 | tail -1
"$bin" generate --events 1000000 --identities "$share" --accounts "$accounts" --seed 2 --out "$work/more.parquet" 2>&1 | tail -1
"$bin" import --data "$work/data" "$work/events.parquet" 2>&1 | tail -2
q() { "$bin" query --data "$work/data" --format csv "$1"; }
q "SELECT count(*) AS persons, count(*) FILTER (WHERE ids >= 2) AS with_two_or_more_ids, count(*) FILTER (WHERE ids >= 3) AS with_three_or_more FROM (SELECT person_id, count(DISTINCT user_id) AS ids FROM events GROUP BY person_id)"
# Rows of an id merged into another id's person: at most these move between buckets.
q "SELECT count(*) AS rows, count(*) FILTER (WHERE user_id <> person_id) AS rows_of_merged_ids FROM events"

runs="${RUNS:-3}"
timed() { # label, sql: the answer once, then RUNS timed runs
  q "$2" > "$work/$1.csv"
  local times=()
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N); q "$2" >/dev/null; end=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$end-$start:.2f}')")")
  done
  echo "$1: ${times[*]} s; answer: $(tr '\n' ' ' < "$work/$1.csv")"
}
steps="['app_open', 'view_item', 'add_to_cart', 'purchase']"
timed funnel_by_person "SELECT step, users FROM funnel($steps, 'window=1 day; by=person') ORDER BY step"
timed funnel_by_user "SELECT step, users FROM funnel($steps, 'window=1 day; by=user') ORDER BY step"
wf="window_funnel(INTERVAL '1 day', event_time, event = 'app_open', event = 'view_item', event = 'add_to_cart', event = 'purchase')"
timed window_funnel_by_person_id "SELECT level, count(*) AS n FROM (SELECT person_id, $wf AS level FROM events GROUP BY person_id) GROUP BY level ORDER BY level"
timed window_funnel_by_user_id "SELECT level, count(*) AS n FROM (SELECT user_id, $wf AS level FROM events GROUP BY user_id) GROUP BY level ORDER BY level"
if [ "$accounts" -gt 0 ]; then
  timed persons_table "SELECT count(*) AS persons, count(properties) AS with_properties, count(DISTINCT json_get_str(properties, 'plan')) AS plans FROM persons"
  timed funnel_by_company "SELECT step, users FROM funnel($steps, 'window=1 day; by=company') ORDER BY step"
  timed funnel_by_person_plan "SELECT breakdown, step, users FROM funnel($steps, 'window=1 day; breakdown=json_get_str(person_properties, ''plan'')') ORDER BY breakdown, step"
fi

echo "== 1M more events: import, then the persons brought up to date (the import's last line)"
"$bin" import --data "$work/data" "$work/more.parquet" 2>&1 | tail -2
echo "== rebuild-persons from nothing"
"$bin" rebuild-persons --data "$work/data" 2>&1 | tail -1
