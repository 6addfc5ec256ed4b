"""Sends events to a Northstar collector with the real Python SDKs, as an app would:
segment-analytics-python, rudder-sdk-python and posthog, each pointed at the collector by its host setting.
Usage: python_sdks.py HTTP_URL WRITE_KEY. Exits non-zero if an SDK reports a failed request.
The Rust test (tests/it/collector) then checks what arrived."""
import sys
from datetime import datetime, timezone

import posthog
import segment.analytics as analytics
from rudderstack.analytics import Client as RudderClient

url, key = sys.argv[1], sys.argv[2]
failures = []


def failed(error, *items):
    failures.append(repr(error))


analytics.write_key = key
analytics.host = url
analytics.sync_mode = True
analytics.on_error = failed
analytics.max_retries = 0
context = {"campaign": {"source": "newsletter", "medium": "email", "name": "june"},
           "page": {"referrer": "https://news.example/", "url": "https://shop.example/pricing"}}
analytics.identify("py-user", {"email": "py@example.com"}, anonymous_id="py-anon", message_id="seg-identify")
analytics.track("py-user", "Order Completed", {"revenue": 9.5}, context=context, message_id="seg-track",
                timestamp=datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc))
analytics.page("py-user", "Docs", "Pricing", {"path": "/pricing"}, message_id="seg-page")
analytics.screen("py-user", "App", "Home", message_id="seg-screen")
analytics.group("py-user", "acme", {"plan": "pro"}, message_id="seg-group")
analytics.alias("py-anon", "py-user", message_id="seg-alias")
analytics.flush()

# RudderStack's SDK speaks Segment's API with its own habits: gzip bodies, identify traits
# under context.traits.
rudder = RudderClient(key, host=url, sync_mode=True, on_error=failed, max_retries=0, gzip=True)
rudder.identify("rs-user", {"email": "rs@example.com"}, anonymous_id="rs-anon", message_id="rs-identify")
rudder.track("rs-user", "Plan Upgraded", {"plan": "team"}, context=context, message_id="rs-track",
             timestamp=datetime(2026, 6, 2, 8, 30, 0, tzinfo=timezone.utc))
rudder.page("rs-user", "Docs", "Pricing", message_id="rs-page")
rudder.group("rs-user", "initech", {"plan": "team"}, message_id="rs-group")
rudder.alias("rs-anon", "rs-user", message_id="rs-alias")
rudder.flush()

client = posthog.Posthog(key, host=url, sync_mode=True, on_error=failed, max_retries=0)
ids = {
    "capture": "00000000-0000-4000-8000-000000000001",
    "set": "00000000-0000-4000-8000-000000000002",
    "alias": "00000000-0000-4000-8000-000000000003",
    "group": "00000000-0000-4000-8000-000000000004",
}
client.capture("signed_up", distinct_id="ph-user", uuid=ids["capture"],
               properties={"plan": "free", "$session_id": "ph-session", "utm_source": "ads",
                           "$current_url": "https://app.example/signup"})
client.set(distinct_id="ph-user", properties={"name": "Max"}, uuid=ids["set"])
client.alias("ph-anon", "ph-user", uuid=ids["alias"])
client.group_identify("company", "acme", {"employees": 12}, uuid=ids["group"], distinct_id="ph-user")
client.flush()
client.shutdown()

if failures:
    print("SDK failures:", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("sent")
