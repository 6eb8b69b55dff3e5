import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { SseHub } from '../src/sse.js'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { TEST_BROKERS, waitFor, writeRecords } from '@pagestream/test-kit'
import { connect } from 'node:net'
import { analyticsTopics, eventMessage, finalTable, readWindows, startAnalytics, topicEnv } from './fixture.js'
import { SseClient } from './sse-client.js'

async function listening (fastify: FastifyInstance): Promise<string> {
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  const address = fastify.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

async function metric (fastify: FastifyInstance, pattern: RegExp): Promise<number> {
  const text = (await fastify.inject('/metrics')).body
  return Number(pattern.exec(text)?.[1] ?? 0)
}

t.test('rolling totals: events of the last 5 s on /analytics, ' +
  'durations of the last 30 s on /analyticsAggregate', async (t) => {
  const topics = await analyticsTopics(t, 'sse-rolling')
  // 1 s windows: the rolling total is exact to the second
  const fastify = await startAnalytics(
    t, { ...topicEnv(topics), WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '60000', SSE_INTERVAL_MS: '200' }
  )
  const base = await listening(fastify)
  const counts = await SseClient.open(`${base}/analytics`)
  const durations = await SseClient.open(`${base}/analyticsAggregate`)
  t.teardown(() => { counts.close(); durations.close() })
  t.equal(counts.status, 200)
  t.match(counts.response?.headers['content-type'], /^text\/event-stream/)

  const now = Date.now()
  // on a window start: the rolling total keeps a window whole while it is inside the span
  const recentAt = Math.floor((now - 500) / 1000) * 1000
  const older = Array.from({
    length: 4,
  }, (_, i) => ({ page: 'rolling', user: `O${i}`, at: now - 15_000, duration: 1000 }))
  const recent = Array.from({ length: 7 }, (_, i) => ({ page: 'rolling', user: `R${i}`, at: recentAt, duration: 10 }))
  await writeRecords(topics.input, [...older, ...recent].map(eventMessage))

  await waitFor('/analytics to count the 7 recent events', () => counts.latest()?.rolling === 7, 15_000)
  await waitFor(
    '/analyticsAggregate to sum all 11 durations', () => durations.latest()?.rolling === 4 * 1000 + 7 * 10, 15_000
  )
  t.pass('the rolling count holds the events of the last 5 s and only those')
  const windows = await fastify.inject(
    `/api/pages/rolling/windows?from=${new Date(now - 20_000).toISOString()}&to=${new Date(now).toISOString()}`)
  t.equal(windows.statusCode, 200)
  const body = windows.json() as { windows: Array<{ count: number, windowStart: string }> }
  t.same(body.windows.map((w) => w.count), [4, 7], 'the query API lists both windows of the range, oldest first')
  t.equal(
    (await fastify.inject('/api/pages/rolling/windows?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z')).statusCode,
    400
  )
  t.equal((await fastify.inject('/api/pages/rolling/windows?from=yesterday')).statusCode, 400)

  // once the recent events are older than 5 s the page reads 0: still listed, not missing
  await waitFor('the rolling count to fall back to 0', () => counts.latest()?.rolling === 0, 10_000)
  t.ok(Date.now() - recentAt >= 5_000, 'it fell only after the events were 5 s old')
  t.same(counts.latest(), { rolling: 0 }, 'a quiet page reads 0')
})

t.test('a burst in one instant reads its exact size on /analytics until it leaves the 5 ' +
  's span, then 0: no decay', async (t) => {
  const topics = await analyticsTopics(t, 'sse-burst')
  // the defaults: tumbling 5 s windows, 100 ms slices
  const fastify = await startAnalytics(t, { ...topicEnv(topics), WINDOW_GRACE_MS: '60000', SSE_INTERVAL_MS: '200' })
  const base = await listening(fastify)
  const counts = await SseClient.open(`${base}/analytics`)
  t.teardown(() => counts.close())

  // just after a window boundary, date the burst 300 ms before it: in the older window, where
  // spreading that window's count over its 5 s would have shown a share of it, shrinking
  await waitFor(
    'the clock to be early in a 5 s window', () => Date.now() % 5000 >= 100 && Date.now() % 5000 < 800, 6_000, 20
  )
  const boundary = Math.floor(Date.now() / 5000) * 5000
  const at = boundary - 300
  const leaves = Math.floor(at / 100) * 100 + 5000
  await writeRecords(topics.input, Array.from({
    length: 7,
  }, (_, i) => eventMessage({ page: 'burst', user: `B${i}`, at, duration: 10 })))

  await waitFor('/analytics to show the 7 events', () => counts.latest()?.burst === 7, 15_000, 20)
  const first = counts.events.length - 1
  await waitFor('the burst to leave the span', () => counts.latest()?.burst === 0, 15_000, 20)
  const dropped = Date.now()
  const readings = counts.events.slice(first).map((e) => (JSON.parse(e.data) as Record<string, number>).burst)
  t.ok(readings.length >= 5, `${readings.length} readings while the burst was in the span`)
  t.same([...new Set(readings)], [7, 0], `exactly 7 at every reading, then 0: ${readings.join(' ')}`)
  t.ok(dropped >= leaves && dropped < leaves + 2000,
    `it left the span when its slice did (seen ${dropped - leaves} ms after)`)

  const windows = await fastify.inject(
    `/api/pages/burst/windows?from=${new Date(at - 1).toISOString()}&to=${new Date(at + 1).toISOString()}`)
  const slices = (value: number) => Array.from({ length: 50 }, (_, i) => i === 47 ? value : 0)
  t.match(windows.json(), {
    windows: [{ count: 7, durationSum: 70, sliceMs: 100, sliceCounts: slices(7), sliceDurationSums: slices(70) }],
  },
  'the window record carries the per-slice sub-totals')
})

t.test('a view-only replica with other window settings reads every window: ' +
  'the geometry comes with the R4 records', async (t) => {
  const topics = await analyticsTopics(t, 'sse-geometry')
  // the processor writes 1 s windows of 100 ms slices; the view-only replica is set to 30 s windows of 5 s slices
  await startAnalytics(t, { ...topicEnv(topics), WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '60000' })
  const viewOnly = await startAnalytics(t, {
    ...topicEnv(topics),
    ANALYTICS_PROCESSOR: 'false',
    WINDOW_SIZE_MS: '30000',
    WINDOW_SLICE_MS: '5000',
    SSE_INTERVAL_MS: '200',
  })
  const base = await listening(viewOnly)
  const counts = await SseClient.open(`${base}/analytics`)
  const durations = await SseClient.open(`${base}/analyticsAggregate`)
  t.teardown(() => { counts.close(); durations.close() })

  const now = Date.now()
  const recentAt = Math.floor((now - 500) / 1000) * 1000 + 300
  const older = Array.from({
    length: 4,
  }, (_, i) => ({ page: 'geometry', user: `O${i}`, at: now - 15_000, duration: 1000 }))
  const recent = Array.from({ length: 7 }, (_, i) => ({ page: 'geometry', user: `R${i}`, at: recentAt, duration: 10 }))
  await writeRecords(topics.input, [...older, ...recent].map(eventMessage))

  await waitFor(
    '/analytics of the view-only replica to count the 7 recent events', () => counts.latest()?.geometry === 7, 15_000
  )
  await waitFor(
    '/analyticsAggregate to sum all 11 durations', () => durations.latest()?.geometry === 4 * 1000 + 7 * 10, 15_000
  )
  const from = new Date(now - 20_000).toISOString()
  const windows = await viewOnly.inject(`/api/pages/geometry/windows?from=${from}&to=${new Date(now).toISOString()}`)
  const listed = (windows.json() as {
    windows: Array<{ count: number, windowStart: string, windowEnd: string }>,
  }).windows
  t.same(listed.map((w) => [w.count, Date.parse(w.windowEnd) - Date.parse(w.windowStart)]), [[4, 1000], [7, 1000]],
    'the query API lists the 1 s windows as written')
})

t.test('SSE etiquette: ids with Last-Event-ID resume, heartbeat, client limit, slow clients dropped', async (t) => {
  const topics = await analyticsTopics(t, 'sse-etiquette')
  const fastify = await startAnalytics(t, {
    ...topicEnv(topics),
    SSE_INTERVAL_MS: '20',
    SSE_HEARTBEAT_MS: '200',
    SSE_MAX_CLIENTS: '3',
    SSE_CLIENT_BUFFER_BYTES: '65536',
    SSE_REPLAY_EVENTS: '1000',
  })
  const base = await listening(fastify)

  const first = await SseClient.open(`${base}/analytics`)
  await waitFor('a few events', () => first.events.length >= 5)
  t.ok(first.events.every((e) => e.id !== undefined && /^[0-9a-f]+-\d+$/.test(e.id)),
    'every event has an id: <boot id>-<number>')
  t.equal(new Set(first.events.map((e) => e.id!.split('-')[0])).size, 1, 'one boot id per process')
  const seqs = first.events.map((e) => Number(e.id!.split('-')[1]))
  const steps = seqs.slice(1).map((seq, i) => seq - seqs[i]!)
  t.same([...new Set(steps)], [1], 'ids step by 1 on each stream, though both streams are pushed together')
  await waitFor('a heartbeat comment', () => first.comments.includes('heartbeat'), 5_000)
  t.pass('heartbeat seen')
  first.close()
  const seen = first.events.slice(0, 5)
  const resumed = await SseClient.open(`${base}/analytics`, { 'last-event-id': seen[1]!.id! })
  await waitFor('the replay', () => resumed.events.length >= 3)
  t.same(resumed.events.slice(0, 3).map((e) => e.id), seen.slice(2, 5).map((e) => e.id),
    'resume replays what followed Last-Event-ID, in order')
  resumed.close()
  const boot = seen[0]!.id!.split('-')[0]!
  const seq = (id: string | undefined) => Number(id?.split('-')[1])
  const fresh = await SseClient.open(`${base}/analytics`, { 'last-event-id': `${boot}-999999999` })
  await waitFor('an event', () => fresh.events.length >= 1)
  t.ok(seq(fresh.events[0]!.id) > seq(seen[4]!.id), 'an unknown Last-Event-ID starts from the newest event')
  fresh.close()
  await waitFor('closed clients to be gone',
    async () => await metric(fastify, /^analytics_sse_clients\{[^}]*channel="analytics"[^}]*\} (\d+)/m) === 0)

  const open = await Promise.all([
    SseClient.open(`${base}/analytics`),
    SseClient.open(`${base}/analyticsAggregate`),
    SseClient.open(`${base}/analytics`),
  ])
  const refused = await SseClient.open(`${base}/analytics`)
  t.equal(refused.status, 503, 'beyond SSE_MAX_CLIENTS: 503')
  t.equal(refused.response?.headers['retry-after'], '5')
  t.match(JSON.parse(refused.body), { statusCode: 503, error: 'Service Unavailable', message: /at most 3/ })
  for (const client of open) client.close()
  // a channel without clients reads 0, not "no data", so dashboards and the at-limit alert see it
  const clientCounts = async () => [...(await fastify.inject('/metrics')).body
    .matchAll(/^analytics_sse_clients\{[^}]*channel="(\w+)"[^}]*\} (\d+)/gm)].map(([, channel, n]) => `${channel} ${n}`)
  t.same((await waitFor('the slots to free up', async () => {
    const counts = await clientCounts()
    return counts.every((count) => count.endsWith(' 0')) && counts
  }, 5_000)).sort(), ['analytics 0', 'analyticsAggregate 0'])

  // big snapshots (many pages) every 20 ms: a client that never reads fills its buffers fast
  const pages = Array.from({ length: 1500 }, (_, i) => ({
    page: `a-page-with-a-rather-long-name-${String(i).padStart(5, '0')}`, user: 'U', at: Date.now(), duration: 1,
  }))
  await writeRecords(topics.input, pages.map(eventMessage))
  const reader = await SseClient.open(`${base}/analytics`)
  t.teardown(() => reader.close())
  await waitFor('snapshots with every page', () => Object.keys(reader.latest() ?? {}).length === pages.length, 20_000)
  const stalled = connect({ host: '127.0.0.1', port: Number(new URL(base).port) })
  let stalledClosed = false
  stalled.on('close', () => { stalledClosed = true })
  stalled.on('error', () => {})
  stalled.write('GET /analytics HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
  stalled.pause()
  t.teardown(() => stalled.destroy())
  const heapBefore = process.memoryUsage().heapUsed
  await waitFor('the non-reading client to be dropped',
    async () => await metric(fastify, /^analytics_sse_clients_dropped_total\{[^}]*\} (\d+)/m) >= 1, 30_000)
  t.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, 'heap stayed bounded while it did not read')
  stalled.resume()
  await waitFor('its connection to be closed', () => stalledClosed, 10_000)
  const before = reader.events.length
  await waitFor('the reading client to go on receiving', () => reader.events.length > before + 5)
  t.equal(await metric(fastify, /^analytics_sse_clients_dropped_total\{[^}]*\} (\d+)/m), 1,
    'only the stalled client was dropped')
})

t.test('Last-Event-ID of another replica (or an earlier run) is unknown: the newest event, ' +
  'not a replay of an unrelated history', async (t) => {
  // two hubs: two replicas behind one service, each numbering its events from 1
  const app = Fastify({ logger: false })
  const hubs = [0, 1].map(() => new SseHub({
    maxClients: 10,
    clientBufferBytes: 65_536,
    stallTimeoutMs: 30_000,
    heartbeatMs: 60_000,
    replayEvents: 100,
    log: app.log,
    metrics: new Registry(),
  }))
  app.get('/a', (request, reply) => { hubs[0]!.open('c', request, reply) })
  app.get('/b', (request, reply) => { hubs[1]!.open('c', request, reply) })
  t.teardown(async () => { for (const hub of hubs) hub.close(); await app.close() })
  const base = await listening(app)
  const ids = [1, 2, 3, 4, 5].map((n) => [hubs[0]!.publish('c', `"a${n}"`), hubs[1]!.publish('c', `"b${n}"`)] as const)
  t.not(ids[1]![0], ids[1]![1], 'the same position in each hub has different ids')
  t.match(ids[1]![0], /^[0-9a-f]+-2$/)

  const own = await SseClient.open(`${base}/b`, { 'last-event-id': ids[1]![1] })
  await waitFor('the replay on b', () => own.events.length >= 3)
  t.same(own.events.map((e) => e.data), ['"b3"', '"b4"', '"b5"'], 'b resumes after its own id')
  own.close()
  const foreign = await SseClient.open(`${base}/b`, { 'last-event-id': ids[1]![0] })
  await waitFor('an event on b', () => foreign.events.length >= 1)
  hubs[1]!.publish('c', '"b6"')
  await waitFor('the next event on b', () => foreign.events.length >= 2)
  t.same(foreign.events.map((e) => e.data), ['"b5"', '"b6"'],
    'an id of replica a gets b\'s newest event, then what follows')
  foreign.close()
  const old = await SseClient.open(`${base}/b`, { 'last-event-id': '2' })
  await waitFor('an event on b', () => old.events.length >= 1)
  t.same(old.events.map((e) => e.data), ['"b6"'], 'so does a bare number (an id from before boot ids)')
  old.close()
})

t.test('a client whose socket does not drain is dropped after ' +
  'SSE_STALL_TIMEOUT_MS, before its byte bound', async (t) => {
  const app = Fastify({ logger: false })
  const metrics = new Registry()
  // a buffer bound no test would reach: only the stall timeout can drop the client
  const hub = new SseHub({
    maxClients: 10,
    clientBufferBytes: 1 << 30,
    stallTimeoutMs: 500,
    heartbeatMs: 60_000,
    replayEvents: 10,
    log: app.log,
    metrics,
  })
  app.get('/s', (request, reply) => { hub.open('s', request, reply) })
  app.get('/other', (request, reply) => { hub.open('other', request, reply) })
  t.teardown(async () => { hub.close(); await app.close() })
  const base = await listening(app)
  const dropped = async (reason: string) => {
    const line = new RegExp(`^analytics_sse_clients_dropped_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`, 'm')
    return Number(line.exec(await metrics.metrics())?.[1] ?? 0)
  }
  const seqs = (client: SseClient) => client.events.map((e) => Number(e.id?.split('-')[1]))

  const reader = await SseClient.open(`${base}/s`)
  t.teardown(() => reader.close())
  const other = await SseClient.open(`${base}/other`)
  t.teardown(() => other.close())
  const stalled = connect({ host: '127.0.0.1', port: Number(new URL(base).port) })
  let stalledClosed = false
  stalled.on('close', () => { stalledClosed = true })
  stalled.on('error', () => {})
  t.teardown(() => stalled.destroy())
  stalled.write('GET /s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
  stalled.pause()
  await waitFor('the stalled client to be connected', () => hub.clientCount === 3)

  // 16 KB events until the kernel's buffers are full and the hub's start to hold bytes
  const frame = JSON.stringify('x'.repeat(16 * 1024))
  let published = 0
  const pump = setInterval(() => { hub.publish('s', frame); hub.publish('other', `${published++}`) }, 5)
  t.teardown(() => clearInterval(pump))
  await waitFor('the non-draining client to be dropped as stalled', async () => await dropped('stalled') === 1, 30_000)
  clearInterval(pump)
  t.equal(await dropped('buffer'), 0, 'not by its buffer bound')
  stalled.resume()
  await waitFor('its connection to be closed', () => stalledClosed, 10_000)
  t.equal(hub.clientCount, 2, 'the clients that read stay connected')
  await waitFor('the reader to receive every event', () => reader.events.length >= published)
  t.same(seqs(reader), Array.from({ length: reader.events.length }, (_, i) => i + 1), 'its ids step by 1 from 1')
  await waitFor('the other stream to receive every event', () => other.events.length >= published)
  t.same(seqs(other), Array.from({ length: other.events.length }, (_, i) => i + 1),
    'so do the other stream\'s, unaffected by the first')
})

t.test('closing the service ends the event streams', async (t) => {
  const topics = await analyticsTopics(t, 'sse-close')
  const fastify = await startAnalytics(t, { ...topicEnv(topics), SSE_INTERVAL_MS: '50' })
  const base = await listening(fastify)
  const client = await SseClient.open(`${base}/analytics`)
  let ended = false
  client.response?.on('close', () => { ended = true })
  await waitFor('an event', () => client.events.length >= 1)
  await fastify.close()
  await waitFor('the stream to end', () => ended, 5_000)
  t.pass('stream ended on close')
})

t.test('events written by a client that is not ours (kcat) show exact counts on /analytics and in R4', async (t) => {
  const topics = await analyticsTopics(t, 'sse-kcat')
  const fastify = await startAnalytics(
    t, { ...topicEnv(topics), WINDOW_SIZE_MS: '5000', WINDOW_GRACE_MS: '0', SSE_INTERVAL_MS: '200' }
  )
  const base = await listening(fastify)
  const counts = await SseClient.open(`${base}/analytics`)
  t.teardown(() => counts.close())
  // the middle of the current 5 s window, so that all five fall into one window
  const now = Math.floor(Date.now() / 5000) * 5000 + 2500
  // the lab's Jackson writes java.util.Date as epoch milliseconds; ISO 8601 is accepted as well
  const lines = [
    ...Array.from({
      length: 4,
    }, (_, i) => `kcat-page:{"name":"kcat-page","user":"K${i}","date":${now - 10 * i},"duration":${100 + i}}`),
    `kcat-page:{"name":"kcat-page","user":"K9","date":"${new Date(now).toISOString()}","duration":1}`,
  ]
  const kcat = spawn(
    'kcat', ['-b', TEST_BROKERS, '-t', topics.input, '-P', '-K:'], { stdio: ['pipe', 'ignore', 'pipe'] }
  )
  let stderr = ''
  kcat.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  kcat.stdin.end(`${lines.join('\n')}\n`)
  const [code] = await once(kcat, 'exit') as [number | null]
  t.equal(code, 0, `kcat wrote the events ${stderr}`)

  await waitFor('/analytics to show the 5 events', () => counts.latest()?.['kcat-page'] === 5, 15_000)
  t.pass('/analytics counts exactly the 5 events')
  // a later event closes the window, so that R4 gets its final record: dated once the clock has
  // passed the window's end (stream time never runs ahead of the clock)
  const windowEnd = Math.floor(now / 5000) * 5000 + 5000
  await waitFor('the clock to pass the window end', () => Date.now() > windowEnd, 10_000, 20)
  await writeRecords(topics.input, [eventMessage({ page: 'kcat-page', user: 'later', at: Date.now(), duration: 0 })])
  const [final] = finalTable(await readWindows(topics.output, 1))
  t.match(
    final,
    { page: 'kcat-page', count: 5, durationSum: 100 + 101 + 102 + 103 + 1, distinctUsers: 5, longViews: 3 },
    'and R4 holds the exact final window'
  )
})
