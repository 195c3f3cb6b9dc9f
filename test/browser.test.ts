/*
 * The demo page in a real browser: Debian's Chromium (never downloaded by a test tool; .ci/run
 * installs it) driven by playwright-core. The page is loaded from the example gateway over WSS
 * with its self-signed certificate, and everything is done through the page's own controls.
 *
 * `SCREENSHOT=docs/screenshot.png npx tap --disable-coverage test/browser.test.ts` also saves the
 * README's screenshot.
 */
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { chromium, type Page } from 'playwright-core'
import { startBackends, tagOf } from '../example/backends'
import { BACKEND_IDS, randomSecret } from '../example/config'
import { startGateway } from '../example/gateway'
import { createCertificate } from '../example/tls'

const CHROMIUM = '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--ignore-certificate-errors', '--disable-background-networking', '--disable-component-update', '--no-first-run']
/** Each step of the page (a click, a frame arriving) must happen within this many milliseconds. */
const STEP_TIMEOUT = 10_000

const TEXT = 'héllo wörld ✓'

/** Bytes as the page shows them: text where printable, `\xNN` elsewhere. */
function shown (bytes: Buffer): string {
  return [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('')
}

/** The log's rows without the time column: [direction, type, size, data]. */
async function rows (page: Page): Promise<string[][]> {
  const cells = await page.locator('#log tbody td').allTextContents()
  const result: string[][] = []
  for (let i = 0; i < cells.length; i += 5) result.push(cells.slice(i + 1, i + 5))
  return result
}

/** What the page must log for one backend: open, text and binary both ways, close 1000. */
function expectedSession (id: typeof BACKEND_IDS[number]): string[][] {
  const text = Buffer.from(TEXT)
  const reply = `${tagOf(id)} echo: ${TEXT}`
  const binaryReply = Buffer.concat([Buffer.from(`${tagOf(id)} `), text])
  return [
    ['●', 'open', '', `${id} (protocol "bearer")`],
    ['→', 'text', `${text.length} B`, JSON.stringify(TEXT)],
    ['←', 'text', `${Buffer.byteLength(reply)} B`, JSON.stringify(reply)],
    ['→', 'binary', `${text.length} B`, shown(text)],
    ['←', 'binary', `${binaryReply.length} B`, shown(binaryReply)],
    ['●', 'close', '', '1000 "bye from the page"']
  ]
}

t.test('the demo page, in headless Chromium, through the example gateway', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y --no-install-recommends chromium, as .ci/run does); this test never downloads a browser`)
    return
  }
  const backends = await startBackends('127.0.0.1', { Backend_ABC: 0, Backend_PQR: 0, Backend_XYZ: 0 })
  t.teardown(backends.close)
  const gateway = await startGateway({ secret: randomSecret(), tls: await createCertificate(), backends: backends.urls, host: '127.0.0.1', port: 0 })
  t.teardown(gateway.close)

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 })
  t.teardown(async () => { await browser.close() })
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } })
  page.setDefaultTimeout(STEP_TIMEOUT)
  const pageErrors: string[] = []
  page.on('pageerror', (err) => { pageErrors.push(err.message) })
  const handshakeErrors: string[] = []
  page.on('websocket', (ws) => { ws.on('socketerror', (message) => { handshakeErrors.push(message) }) })

  await page.goto(`https://localhost:${gateway.port}/`)
  t.equal(await page.title(), 'fastify-ws-gateway demo')
  t.match(await page.textContent('.note'), /Demo only.*real app.*own login/s, 'the page says its token route is for the demo only')

  for (const id of BACKEND_IDS) {
    await page.click('#clear')
    await page.selectOption('#backend', id)
    await page.selectOption('#token-kind', 'demo')
    await page.click('#connect')
    await page.waitForSelector('#status[data-state="open"]')
    await page.fill('#message', TEXT)
    await page.click('#send-text')
    await page.locator('#log tbody tr[data-dir="in"]').nth(0).waitFor()
    await page.click('#send-binary')
    await page.locator('#log tbody tr[data-dir="in"]').nth(1).waitFor()
    await page.click('#disconnect')
    await page.waitForSelector('#status[data-state="closed"]')
    t.same(await rows(page), expectedSession(id), `${id}: frames both ways with type and size, then close 1000`)
    t.equal(await page.textContent('#status'), 'closed: 1000')
  }
  t.match(gateway.app.wsGateway.stats(), { open: 0, total: BACKEND_IDS.length }, 'the gateway relayed one connection per backend')

  // A bad token, after the last session (so the screenshot shows both).
  await page.selectOption('#token-kind', 'bad')
  await page.click('#connect')
  await page.waitForSelector('#status[data-state="refused"]')
  t.equal(await page.textContent('#status'), 'refused: 1006')
  t.same((await rows(page)).at(-1), ['●', 'close', '', '1006: refused before the upgrade, with an HTTP error browsers hide from pages; /demo/refusals counted FST_WS_GATEWAY_INVALID_TOKEN'])
  t.same(gateway.app.wsGateway.stats().rejected, { FST_WS_GATEWAY_INVALID_TOKEN: 1 }, 'refused by the gateway, once')
  t.match(handshakeErrors.join('\n'), /HTTP Authentication failed/, 'the browser saw the 401 (Chromium\'s words for it), but did not tell the page')
  t.same(pageErrors, [], 'no script errors on the page')

  const png = await page.screenshot({ fullPage: true })
  t.equal(png.subarray(1, 4).toString(), 'PNG')
  if (process.env.SCREENSHOT !== undefined) await writeFile(process.env.SCREENSHOT, png)
})
