// Row `fanout`: 10,000 clients on /analytics of one analytics role (processor on, a trickle of events so
// frames carry real pages). Measures the role's resident memory per client (RSS after the clients
// connected minus before, over the clients) and the spread of each broadcast: from the first client to
// the last receiving the same event id. Goals: <= 16 KB per client, spread p99 <= 250 ms.
// The clients are raw sockets in this one process, so the spread includes this process reading 10,000 of them.
import net from 'node:net'
import { pageEventMessage, producerProperties } from '@pagestream/core'
import { absoluteCheck, emit, interleave, progress, quantile } from './lib/row.mjs'
import { RUN, benchKafka, rssBytes, sleep, startRole } from './lib/procs.mjs'

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 10_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6)
const CONNECT_BATCH = 250
const input = `bench-fanout-in-${RUN}`
const output = `bench-fanout-out-${RUN}`

const kafka = benchKafka()
const admin = kafka.admin()
await admin.connect()
const analytics = await startRole('analytics', {
  ANALYTICS_INPUT_TOPIC: input,
  ANALYTICS_OUTPUT_TOPIC: output,
  ANALYTICS_GROUP_ID: `bench-fanout-${RUN}`,
  SSE_MAX_CLIENTS: String(CLIENTS + 100),
}, { readyTimeoutMs: 120_000 })
const { port } = new URL(analytics.url)

// 20 events/s over 20 pages: every push carries a map of 20 pages
const trickleProducer = kafka.producer(producerProperties())
await trickleProducer.connect()
const trickling = { on: true }
const trickle = (async () => {
  for (let n = 0; trickling.on; n++) {
    const event = { name: `page-${n % 20}`, user: 'U1', date: new Date().toISOString(), duration: n % 300 }
    await trickleProducer.send({ topic: input, messages: [pageEventMessage(event)] })
    await sleep(50)
  }
})()

/** event id -> arrival times at clients (performance.now()), while recording */
let arrivals
const sockets = []
const ID = Buffer.from('id: ')
/** A raw socket reading /analytics: cheap per chunk (bytes, no decoding), so the spread is mostly the server's. */
function connectClient () {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1')
    let opened = false
    socket.on('connect', () => {
      socket.write('GET /analytics HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n\r\n')
    })
    socket.on('data', (chunk) => {
      const at = performance.now()
      if (!opened && chunk.includes('retry:')) { opened = true; resolve(socket) }
      if (arrivals === undefined) return
      // every event starts a line with its id; the server writes an event in one piece
      for (let from = chunk.indexOf(ID); from >= 0; from = chunk.indexOf(ID, from + 1)) {
        if (from > 0 && chunk[from - 1] !== 10) continue
        const end = chunk.indexOf(10, from)
        if (end < 0) break
        const id = chunk.toString('latin1', from + ID.length, end)
        const times = arrivals.get(id)
        if (times === undefined) arrivals.set(id, [at])
        else times.push(at)
      }
    })
    socket.on('error', (err) => { if (!opened) reject(err) })
  })
}

try {
  await sleep(2_000)
  const baseline = rssBytes(analytics.pid)
  for (let i = 0; i < CLIENTS; i += CONNECT_BATCH) {
    const batch = Math.min(CONNECT_BATCH, CLIENTS - i)
    sockets.push(...await Promise.all(Array.from({ length: batch }, connectClient)))
    progress(`fanout: ${sockets.length} of ${CLIENTS} clients connected`)
  }
  await sleep(2_000)
  const withClients = rssBytes(analytics.pid)
  const perClientKb = (withClients - baseline) / CLIENTS / 1024
  const spreads = []
  const { pagestream: perRound } = await interleave(ROUNDS, {
    pagestream: async () => {
      arrivals = new Map()
      await sleep(SECONDS * 1000)
      const recorded = arrivals
      arrivals = undefined
      // only broadcasts every client received whole within the round
      const complete = [...recorded.values()].filter((times) => times.length === CLIENTS)
      const values = complete.map((times) => Math.max(...times) - Math.min(...times))
      if (values.length === 0) throw new Error('no broadcast reached every client within the round')
      spreads.push(...values)
      return values
    },
  }, 'fanout')
  const rssAfter = rssBytes(analytics.pid)
  emit({
    id: 'fanout',
    title: `fanout: ${CLIENTS.toLocaleString('en-US')} SSE clients on /analytics, ${ROUNDS} rounds of ${SECONDS} s, ` +
      `${spreads.length} broadcasts`,
    measures: [
      { name: 'spread p50 per round', unit: 'ms', samples: perRound.map((v) => quantile(v, 0.5)) },
      { name: 'spread max per round', unit: 'ms', samples: perRound.map((v) => Math.max(...v)) },
      {
        name: 'analytics RSS: before clients, with them, at the end',
        unit: 'MB',
        samples: [baseline, withClients, rssAfter].map((b) => b / 1024 / 1024),
      },
    ],
    checks: [
      absoluteCheck('memory per SSE client', perClientKb, 'KB', { op: '<=', target: 16 }),
      absoluteCheck('broadcast spread p99', quantile(spreads, 0.99), 'ms', { op: '<=', target: 250 }),
    ],
  })
} finally {
  for (const socket of sockets) socket.destroy()
  trickling.on = false
  await trickle.catch(() => {})
  await trickleProducer.disconnect()
  await analytics.stop()
  const made = new Set(await admin.listTopics())
  await admin.deleteTopics({ topics: [...made].filter((t) => t.startsWith('bench-fanout') && t.includes(RUN)) })
    .catch(() => {})
  await admin.disconnect()
}
