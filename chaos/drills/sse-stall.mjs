// 1,000 SSE clients that connect to /analytics and stop reading: each is dropped, a client that reads goes on
// receiving, and the analytics role's resident memory comes back to its baseline once they are gone.
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRole, waitFor } from '@pagestream/test-kit'
import { check } from '../lib/report.mjs'
import { drillTopics, pageEventRecord, roleEnv, writeEvents } from '../lib/pipeline.mjs'

const STALLED = 1_000
const PAGES = 1_500
// resident memory "back to baseline": within this of it (the heap grows in steps and gives pages back lazily)
const RSS_SLACK_MB = 48
const WARM_UP_S = 40

async function rssMb (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024
}

async function metric (url, pattern) {
  const text = await (await fetch(`${url}/metrics`)).text()
  return [...text.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0)
}

/** A reader that reads: counts the SSE events it receives. */
function readingClient (url) {
  const state = { events: 0, bytes: 0 }
  const controller = new AbortController()
  void fetch(url, { signal: controller.signal, headers: { accept: 'text/event-stream' } }).then(async (response) => {
    for await (const chunk of response.body) {
      state.bytes += chunk.length
      state.events += (Buffer.from(chunk).toString('utf8').match(/^data:/gm) ?? []).length
    }
  }).catch(() => {})
  return { state, close: () => controller.abort() }
}

/** A client that sends its request and never reads a byte of the answer (until the drill looks at it). */
function stalledClient (port) {
  const socket = connect(port, '127.0.0.1')
  const client = { socket, status: 'no answer' }
  socket.on('error', () => {})
  socket.once('data', (chunk) => { client.status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? '?' })
  socket.write('GET /analytics HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
  socket.pause()
  return client
}

export const drill = {
  title: `${STALLED.toLocaleString('en-US')} SSE clients that stop reading`,
  async run ({ t, progress }) {
    const topics = await drillTopics(t, 'chaos-sse')
    const analytics = await startRole(t, 'analytics', {
      ...roleEnv(topics).analytics,
      WINDOW_GRACE_MS: '0',
      SSE_MAX_CLIENTS: String(STALLED + 100),
    }, { readyTimeoutMs: 120_000 })
    const pid = analytics.child.pid
    // many pages with long names, fresh through the warm-up: snapshots are large, a client that does not read lags
    const pageRecord = (i) => pageEventRecord({
      id: `sse-${i}`,
      name: `a-page-with-a-rather-long-name-${String(i).padStart(5, '0')}`,
      user: 'U1',
      at: Date.now(),
      duration: 1,
    })
    const keepFresh = async () => { await writeEvents([topics.r2], PAGES, pageRecord) }
    await keepFresh()
    const refresher = setInterval(() => { void keepFresh().catch(() => {}) }, 2_000)
    t.teardown(() => clearInterval(refresher))

    const reader = readingClient(`${analytics.url}/analytics`)
    t.teardown(() => reader.close())
    await waitFor('snapshots with every page', () => reader.state.bytes > 20 * PAGES * 40, 60_000, 100)
    // the view keeps windows for its longest rolling span (30 s): the baseline is taken once that is full
    for (let s = WARM_UP_S; s > 0; s -= 5) {
      progress(`warming up with a reading client, ${s} s to go; RSS ${(await rssMb(pid)).toFixed(0)} MB`)
      await sleep(5_000)
    }
    // no more input from here: what the role's memory does next is the stalled clients' doing, not a backlog's
    clearInterval(refresher)
    await sleep(5_000)
    const samples = []
    for (let i = 0; i < 6; i++) { samples.push(await rssMb(pid)); await sleep(500) }
    const baseline = samples.sort((a, b) => a - b)[3]
    progress(`baseline RSS ${baseline.toFixed(0)} MB; opening ${STALLED} clients that do not read`)

    const stalled = []
    let peak = baseline
    const sample = () => rssMb(pid).then((mb) => { peak = Math.max(peak, mb) }, () => {})
    const sampler = setInterval(() => { void sample() }, 250)
    t.teardown(() => clearInterval(sampler))
    const opened = Date.now()
    for (let i = 0; i < STALLED; i++) {
      stalled.push(stalledClient(analytics.port))
      if (i % 100 === 99) await sleep(50)
    }
    t.teardown(() => { for (const client of stalled) client.socket.destroy() })
    const dropped = /^analytics_sse_clients_dropped_total\{[^}]*\} (\d+)/gm
    const held = /^analytics_sse_clients\{[^}]*channel="analytics"[^}]*\} (\d+)/gm
    // done when the hub holds the reading client alone again: every other was dropped or never taken on
    await waitFor('the stalled clients to be gone', async () => {
      const [n, clients] = [await metric(analytics.url, dropped), await metric(analytics.url, held)]
      progress(`${n}/${STALLED} dropped, ${clients - 1} held; RSS ${(await rssMb(pid)).toFixed(0)} MB, ` +
        `peak ${peak.toFixed(0)} MB`)
      return n > 0 && clients === 1 && Date.now() - opened > 10_000
    }, 180_000, 1_000)
    const dropMs = Date.now() - opened
    clearInterval(sampler)
    const byReason = /^analytics_sse_clients_dropped_total\{[^}]*reason="([a-z]+)"[^}]*\} (\d+)/gm
    const reasons = [...(await (await fetch(`${analytics.url}/metrics`)).text()).matchAll(byReason)]
      .map(([, reason, n]) => `${reason} ${n}`).join(', ')
    // what each stalled client had been answered: read its first bytes now
    for (const client of stalled) client.socket.resume()
    await sleep(3_000)
    const answers = new Map()
    for (const client of stalled) answers.set(client.status, (answers.get(client.status) ?? 0) + 1)
    for (const client of stalled) client.socket.destroy()

    const eventsBefore = reader.state.events
    await waitFor('the reading client to go on receiving', () => reader.state.events > eventsBefore + 5, 30_000)
    let after = await rssMb(pid)
    const settled = await waitFor('RSS back to baseline', async () => {
      after = await rssMb(pid)
      progress(`RSS ${after.toFixed(0)} MB, baseline ${baseline.toFixed(0)} MB`)
      return after <= baseline + RSS_SLACK_MB
    }, 60_000, 1_000).then(() => true, () => false)
    const ready = (await fetch(`${analytics.url}/health/ready`)).status
    return [
      check('clients that stopped reading', STALLED),
      check('stalled clients the hub still holds', await metric(analytics.url, held) - 1, { op: '=', want: 0 }),
      check('dropped by the hub', await metric(analytics.url, dropped)),
      check('dropped, by reason', reasons),
      check('what the stalled clients were answered', [...answers].map(([status, n]) => `${status}×${n}`).join(' ')),
      check('stalled clients answered 5xx', [...answers].filter(([status]) => /^5/.test(status))
        .reduce((sum, [, n]) => sum + n, 0), { op: '=', want: 0 }),
      check('all dropped within, ms', dropMs),
      check('reading client still served', reader.state.events > eventsBefore ? 1 : 0, { op: '=', want: 1 }),
      check('RSS baseline, MB', Math.round(baseline)),
      check('RSS peak while they hung, MB', Math.round(peak)),
      check(`RSS after, MB (baseline + ${RSS_SLACK_MB})`, Math.round(after),
        { op: '<=', want: Math.round(baseline + RSS_SLACK_MB) }),
      check('RSS back within 60 s', settled ? 1 : 0, { op: '=', want: 1 }),
      check('readiness at the end', ready, { op: '=', want: 200 }),
    ]
  },
}
