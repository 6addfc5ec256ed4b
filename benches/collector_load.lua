-- wrk script for benches/collector.sh: every request is a PostHog batch of 100 events with
-- message ids unique across threads and requests (so none is dropped as a retry), events of
-- a 4-step funnel plus noise, users drawn from a pool.
local thread_count = 0
local events = {"signup", "view_item", "add_to_cart", "purchase", "app_open", "search"}
local users = tonumber(os.getenv("BENCH_USERS") or "200000")

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  math.randomseed(1000 + thread_id)
  sent = 0
end

function request()
  sent = sent + 1
  local parts = {}
  for i = 1, 100 do
    local user = math.random(1, users)
    parts[i] = string.format(
      '{"event":"%s","distinct_id":"u%d","uuid":"w%d-%d-%d","properties":{"$session_id":"s%d","$lib":"bench","price":%d}}',
      events[math.random(1, #events)], user, thread_id, sent, i, user, math.random(1, 500))
  end
  local body = '{"api_key":"bench","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/batch/", {["Content-Type"] = "application/json"}, body)
end
