// Opens tests/sdks/posthog_page.html in headless Chromium (Debian's, driven by playwright-core)
// and waits until posthog-js has sent its page view, identify and custom event to the collector.
// Usage: node browser_posthog.mjs PAGE_URL. Exits non-zero if the page or a request failed.
import { chromium } from 'playwright-core'

const [pageUrl] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const failures = []
try {
  const page = await browser.newPage()
  page.on('pageerror', (err) => failures.push(`page error: ${err}`))
  const answered = []
  page.on('response', (response) => {
    if (response.request().method() === 'POST') answered.push(response.status())
  })
  await page.goto(pageUrl)
  await page.waitForFunction(() => window.ready === true, null, { timeout: 20000 })
  // $pageview, $identify and button_clicked, each its own request (request_batching off).
  const deadline = Date.now() + 20000
  while (answered.length < 3 && Date.now() < deadline) await page.waitForTimeout(100)
  if (answered.length < 3 || answered.some((status) => status !== 200)) {
    failures.push(`collector answers: ${JSON.stringify(answered)}`)
  }
} finally {
  await browser.close()
}
if (failures.length) {
  console.error(failures.join('\n'))
  process.exit(1)
}
console.log('sent')
