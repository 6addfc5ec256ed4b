// Sends events to a Northstar collector with the real Node SDKs, as a server app would:
// @segment/analytics-node and posthog-node, pointed at the collector by their host settings.
// Usage: node node_sdks.mjs HTTP_URL WRITE_KEY. Exits non-zero if an SDK reports an error.
import { Analytics } from '@segment/analytics-node'
import { PostHog } from 'posthog-node'

const [url, key] = process.argv.slice(2)
const failures = []

const analytics = new Analytics({ writeKey: key, host: url, maxRetries: 0, flushInterval: 100 })
analytics.on('error', (err) => failures.push(String(err?.reason ?? err)))
analytics.identify({ userId: 'node-user', anonymousId: 'node-anon', traits: { email: 'n@example.com' }, messageId: 'node-identify' })
analytics.track({ userId: 'node-user', event: 'Checkout Started', properties: { items: 3 }, messageId: 'node-track' })
analytics.page({ anonymousId: 'node-anon', name: 'Home', properties: { path: '/' }, messageId: 'node-page' })
analytics.group({ userId: 'node-user', groupId: 'globex', traits: { plan: 'team' }, messageId: 'node-group' })
analytics.alias({ userId: 'node-user', previousId: 'node-anon', messageId: 'node-alias' })
await analytics.closeAndFlush({ timeout: 10000 })

const posthog = new PostHog(key, { host: url, flushAt: 1, flushInterval: 0, fetchRetryCount: 0 })
posthog.on('error', (err) => failures.push(String(err)))
posthog.capture({ distinctId: 'pn-user', event: 'report_viewed', properties: { report: 'funnel', $session_id: 'pn-session' },
  uuid: '00000000-0000-4000-8000-0000000000a1' })
posthog.alias({ distinctId: 'pn-user', alias: 'pn-anon' })
posthog.groupIdentify({ groupType: 'company', groupKey: 'initech', properties: { seats: 5 }, distinctId: 'pn-user' })
await posthog.shutdown(10000)

if (failures.length) {
  console.error('SDK failures:\n  ' + failures.join('\n  '))
  process.exit(1)
}
console.log('sent')
