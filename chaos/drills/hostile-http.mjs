// 10k hostile requests to the producer role (bad topic and page names, huge bodies, bad JSON, wrong methods and
// content types, malformed and slowloris-style partial requests): no 5xx, and nothing written for a refusal.
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRole, uniqueName, waitFor } from '@pagestream/test-kit'
import { check } from '../lib/report.mjs'
import { recordCount } from '../lib/topics.mjs'

const REQUESTS = 10_000
const CONCURRENCY = 32
const PARTIAL = { headers: 100, body: 50, garbage: 50 }
const BODY_LIMIT = 1_048_576

const event = (overrides = {}) => ({
  name: 'blog', user: 'U1', date: '2024-01-01T00:00:00Z', duration: 5, ...overrides,
})
const json = { 'content-type': 'application/json' }

/** Each a request that must be refused with a 4xx; the drill cycles through them. */
function hostileRequests (topic) {
  const post = (body, headers = json) => ({ path: `/events/${topic}`, method: 'POST', headers, body })
  return {
    'internal topic': { path: '/publish/__consumer_offsets/x' },
    'topic off the allow-list': { path: '/publish/R9/x' },
    'topic in another case': { path: `/publish/${topic.toUpperCase()}/x` },
    'path traversal': { path: '/publish/..%2F..%2Fetc%2Fpasswd/x' },
    'topic name too long': { path: `/publish/${'t'.repeat(300)}/x` },
    'page name too long': { path: `/publish/${topic}/${'a'.repeat(300)}` },
    'broken percent-encoding': { path: `/publish/${topic}/%E0%A4%A` },
    'lone surrogate in the name': { path: `/publish/${topic}/%ED%A0%80` },
    'body over the limit': post(JSON.stringify([event({ name: 'x'.repeat(BODY_LIMIT) })])),
    'invalid JSON': post('{"name":"blog","user":'),
    'JSON of the wrong shape': post(JSON.stringify({ name: 1, user: [], date: null })),
    'negative duration': post(JSON.stringify(event({ duration: -1 }))),
    'duration as a string': post(JSON.stringify(event({ duration: '5' }))),
    'impossible date': post(JSON.stringify(event({ date: '2023-02-30T00:00:00Z' }))),
    'empty array': post('[]'),
    'batch over the maximum': post(JSON.stringify(Array.from({ length: 501 }, () => event()))),
    'one bad event in a batch': post(JSON.stringify([event(), event(), event({ user: '' })])),
    'prototype pollution': post('{"__proto__":{"polluted":true},"name":"blog","user":"U1","date":0,"duration":1}'),
    'deeply nested': post(`${'['.repeat(5_000)}${']'.repeat(5_000)}`),
    'text/plain body': post(JSON.stringify(event()), { 'content-type': 'text/plain' }),
    'no content type': post(JSON.stringify(event()), {}),
    'empty JSON body': post('', json),
    PUT: { path: `/events/${topic}`, method: 'PUT', headers: json, body: JSON.stringify(event()) },
    DELETE: { path: `/publish/${topic}/x`, method: 'DELETE' },
    PATCH: { path: `/events/${topic}`, method: 'PATCH', headers: json, body: '{}' },
    'GET on the POST route': { path: `/events/${topic}` },
  }
}

/** Raw bytes to the port: what fetch cannot send. Resolves with the status line's code, or 'closed'. */
function rawRequest (port, bytes, { hold = false } = {}) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const opened = Date.now()
    let answer = ''
    socket.on('connect', () => { socket.write(bytes) })
    socket.on('data', (chunk) => { answer += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => {
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0), ms: Date.now() - opened })
    })
    if (!hold) socket.end()
  })
}

export const drill = {
  title: `${REQUESTS.toLocaleString('en-US')} hostile HTTP requests to the producer`,
  async run ({ t, progress }) {
    const topics = [uniqueName('chaos-hostile-r1'), uniqueName('chaos-hostile-r2')]
    const producer = await startRole(t, 'producer', {
      PRODUCER_TOPICS: topics.join(','),
      RATE_LIMIT_MAX: '10000000',
      LOG_LEVEL: 'warn',
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
    })
    const before = (await Promise.all(topics.map(recordCount))).reduce((a, b) => a + b, 0)
    const kinds = Object.entries(hostileRequests(topics[0]))
    const statuses = new Map()
    const byKind = new Map()
    const note = (kind, status) => {
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (!byKind.has(kind)) byKind.set(kind, new Set())
      byKind.get(kind).add(status)
    }

    // the slow ones first, held open while the rest hammer the server
    const { port } = producer
    const partialHeaders = Array.from({ length: PARTIAL.headers }, () =>
      rawRequest(port, `GET /publish/${topics[0]}/x HTTP/1.1\r\nHost: localhost\r\nX-Slow: `, { hold: true }))
    const partialBodies = Array.from({ length: PARTIAL.body }, () => rawRequest(port,
      `POST /events/${topics[0]} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
      'Content-Length: 100000\r\n\r\n[{"name":"blog",', { hold: true }))
    const garbage = await Promise.all(Array.from({ length: PARTIAL.garbage }, (_, i) => rawRequest(port, [
      'GARBAGE\r\n\r\n',
      `GET /publish/${topics[0]}/x HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`,
      `POST /events/${topics[0]} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n` +
        'Transfer-Encoding: chunked\r\n\r\n',
    ][i % 3])))
    for (const { status } of garbage) note('malformed HTTP', status || 'closed')
    let liveWhileHeld = 0
    // the partial requests are still held (the server gives them 10 s of silence): it must serve others meanwhile
    const live = await fetch(`${producer.url}/health/ready`)
    if (live.status === 200) liveWhileHeld++
    await live.arrayBuffer()

    let done = 0
    const fetches = REQUESTS - PARTIAL.headers - PARTIAL.body - PARTIAL.garbage
    const worker = async (w) => {
      for (let i = w; i < fetches; i += CONCURRENCY) {
        const [kind, request] = kinds[i % kinds.length]
        const response = await fetch(`${producer.url}${request.path}`, {
          method: request.method ?? 'GET', headers: request.headers, body: request.body,
        }).catch(() => undefined)
        await response?.arrayBuffer().catch(() => {})
        note(kind, response?.status ?? 'no answer')
        done++
        if (done % 500 === 0) progress(`${done}/${fetches} sent`)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))

    progress('waiting for the server to close the partial requests')
    const held = await Promise.all([...partialHeaders, ...partialBodies])
    for (const { status } of held) note('slowloris (partial request)', status || 'closed')
    const heldMs = Math.max(...held.map((h) => h.ms))
    await sleep(1_000)
    // the role is still there and serving
    let readiness = 'no answer'
    const ready = await waitFor('the producer to be ready', async () => {
      const response = await fetch(`${producer.url}/health/ready`)
      readiness = `${response.status} ${await response.text()}`
      return response.status === 200
    }, 30_000).catch(() => false)
    if (!ready) {
      const exit = producer.child.exitCode ?? producer.child.signalCode
      progress(`producer not ready: ${exit === null ? readiness : `exited ${exit}`}; last lines:\n` +
        producer.output.slice(-5).join('\n'))
    }
    const after = (await Promise.all(topics.map(recordCount))).reduce((a, b) => a + b, 0)
    const count = (predicate) => [...statuses].filter(([s]) => predicate(s)).reduce((sum, [, n]) => sum + n, 0)
    const accepted = [...byKind].filter(([, s]) => [...s].some((status) => status >= 200 && status < 300))
      .map(([kind]) => kind)
    return [
      check('requests', count(() => true), { op: '>=', want: REQUESTS }),
      check('5xx answers', count((s) => typeof s === 'number' && s >= 500), { op: '=', want: 0 }),
      check('2xx answers (kinds accepted)', accepted.length === 0 ? 0 : accepted.join(', '), { op: '=', want: 0 }),
      check('requests without an answer (fetch)', statuses.get('no answer') ?? 0, { op: '=', want: 0 }),
      check('records written to the topics', after - before, { op: '=', want: 0 }),
      check('answers: 4xx by status', [...statuses].filter(([s]) => typeof s === 'number' && s >= 400 && s < 500)
        .sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')),
      check('partial requests closed by the server, longest ms', heldMs, { op: '<=', want: 60_000 }),
      check('ready while partial requests were held', liveWhileHeld, { op: '=', want: 1 }),
      check('ready at the end', ready ? 1 : 0, { op: '=', want: 1 }),
    ]
  },
}
