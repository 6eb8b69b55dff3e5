import { execFile } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import {
  ROOT, type RunningRole, TEST_BROKERS, deleteTopics, startRole, topicExists, uniqueName, waitFor, writeRecords,
} from '@pagestream/test-kit'
import {
  analyticsTopics, eventMessage, oneSecondWindows, steadyEvents,
} from '../services/analytics/test/fixture.js'
import { asRecords, inputEvents, pipeline, startTransformer, status } from '../services/transformer/test/support.js'

const run = promisify(execFile)

/** Holds a port as another program would, until the test ends. */
async function takenPort (t: Test): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const address = server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

/** Starts a role on a port already in use and returns its exit code and log lines. */
async function startOnTakenPort (t: Test, role: string, port: number, env: Record<string, string>) {
  const failed = await startRole(t, role, { ...env, HTTP_PORT: String(port), LOG_LEVEL: 'info' }, { waitReady: false })
  const code = await waitFor(`${role} on a taken port to exit`, () => failed.child.exitCode ?? undefined, 20_000)
  return { code, logs: failed.logs() }
}

async function ready (role: RunningRole): Promise<boolean> {
  return (await fetch(`${role.url}/health/ready`)).status === 200
}

async function metric (role: RunningRole, name: string): Promise<number> {
  const text = await (await fetch(`${role.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return Number(line?.split(' ').at(-1) ?? 0)
}

t.test('a role started on a taken port exits 1 at once, naming the port, before touching Kafka', async (t) => {
  const topic = uniqueName('life-port')
  t.teardown(() => deleteTopics([topic]))
  const port = await takenPort(t)
  const { code, logs } = await startOnTakenPort(t, 'producer', port, { PRODUCER_TOPICS: topic })
  t.equal(code, 1)
  const fatal = logs.find((l) => l.msg === 'start-up failed')
  t.match(fatal, { level: 60, err: { code: 'EADDRINUSE' } }, 'the log says the port was taken')
  t.notOk(await topicExists(topic), 'no topic was created: Kafka was never used')
})

t.test('a failed start-up whose close hangs still exits 1 within SHUTDOWN_TIMEOUT_MS', async (t) => {
  const fixture = join(ROOT, 'test', 'fixtures', 'hanging-start-role.mjs')
  const env = { ...process.env, KAFKA_BROKERS: TEST_BROKERS, HTTP_PORT: '0', SHUTDOWN_TIMEOUT_MS: '1000' }
  type Failure = { code: number | null, stdout: string }
  const failed = await run(process.execPath, [fixture], { env, timeout: 20_000 })
    .catch((err: Failure) => err) as Failure
  t.equal(failed.code, 1, 'exit code 1, not killed by the test timeout')
  t.match(failed.stdout, /start-up fails on purpose/)
  t.match(failed.stdout, /closing after the failed start-up timed out/)
})

t.test('a second analytics with one instance id, started on a taken port, leaves the running one be', async (t) => {
  const topics = await analyticsTopics(t, 'life-twin', 2)
  const env = oneSecondWindows(topics, { COMMIT_INTERVAL_MS: '100', ANALYTICS_INSTANCE_ID: 'twin', LOG_LEVEL: 'warn' })
  const running = await startRole(t, 'analytics', env)
  const pages = ['p0', 'p1', 'p2', 'p3', 'p4']
  const events = (from: number, count: number) => steadyEvents(from, count, pages).map(eventMessage)
  const counted = () => metric(running, 'analytics_events_total')
  await writeRecords(topics.input, events(0, 100))
  await waitFor('the running replica to count 100 events', async () => await counted() >= 100, 30_000)

  const second = await startOnTakenPort(t, 'analytics', running.port, env)
  t.equal(second.code, 1, 'the second one exits 1')
  t.match(second.logs.find((l) => l.msg === 'start-up failed'), { err: { code: 'EADDRINUSE' } })
  t.notOk(second.logs.some((l) => l.msg === 'processor started'), 'its processor never started')

  await writeRecords(topics.input, events(100, 100))
  await waitFor('the running replica to count the next 100 events', async () => await counted() >= 200, 30_000)
  t.ok(await ready(running), 'the running replica is still ready')
  t.equal(await counted(), 200, 'and counted each event once')
  t.notOk(running.logs().some((l) => /fenc/i.test(String(l.msg))), 'and was never fenced')
})

t.test('a second transformer with one instance id, started on a taken port, leaves the running one be', async (t) => {
  const topics = await pipeline(t, 'life-twin-tr')
  const running = await startTransformer(t, topics, 'twin')
  const transformed = async () => (await status(running)).counts.transformed
  await writeRecords(topics.input, asRecords(inputEvents(50, 'a')))
  await waitFor('the running transformer to transform 50 events', async () => await transformed() >= 50, 30_000)

  const second = await startOnTakenPort(t, 'transformer', running.port, {
    TRANSFORMER_INPUT_TOPIC: topics.input,
    TRANSFORMER_OUTPUT_TOPIC: topics.output,
    TRANSFORMER_GROUP_ID: topics.group,
    TRANSFORMER_INSTANCE_ID: 'twin',
  })
  t.equal(second.code, 1, 'the second one exits 1')
  t.match(second.logs.find((l) => l.msg === 'start-up failed'), { err: { code: 'EADDRINUSE' } })

  await writeRecords(topics.input, asRecords(inputEvents(50, 'b')))
  await waitFor('the running transformer to transform the next 50', async () => await transformed() >= 100, 30_000)
  t.ok(await ready(running), 'the running transformer is still ready')
  const counts = { transformed: 100, timesFenced: 0, producerReplacements: 0 }
  t.match(await status(running), { counts, lastError: null }, 'never fenced, nothing redone')
})

interface Outcome { status: number, connection: string, error: string, reused: boolean }

/** One POST on the client's keep-alive agent; `reused` says whether its connection had served a request before. */
function post (agent: Agent, url: URL, body: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json' }
    const request = httpRequest(url, { method: 'POST', agent, headers }, (response) => {
      response.resume()
      const answer = { status: response.statusCode ?? 0, connection: String(response.headers.connection), error: '' }
      response.on('end', () => resolve({ ...answer, reused: request.reusedSocket }))
    })
    request.on('error', (err: NodeJS.ErrnoException) => {
      resolve({ status: 0, connection: '', error: err.code ?? err.message, reused: request.reusedSocket })
    })
    request.end(body)
  })
}

t.test('SIGTERM under load: keep-alive clients get answers or 503 + Connection: close, never a reset', async (t) => {
  const topic = uniqueName('life-keepalive')
  t.teardown(() => deleteTopics([topic]))
  const env = { PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '1000000', LOG_LEVEL: 'warn' }
  const producer = await startRole(t, 'producer', env)
  const url = new URL(`${producer.url}/events/${topic}`)
  const body = JSON.stringify({ name: 'blog', user: 'U1', date: '2024-01-01T00:00:00.000Z', duration: 1 })
  let stopping = false
  const afterSignal: Outcome[] = []
  const served = new Set<number>()
  // each client keeps one keep-alive connection: 24 busy, as a load balancer or a busy SDK does, and 8 that pause
  // 50 ms between requests, so that requests also arrive on open connections after the drain began (not only
  // requests under way when it did, which get their 200 with `Connection: close`): those must get the 503
  const clients = Array.from({ length: 32 }, async (_, i) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const pauseMs = i < 24 ? 0 : 50
    try {
      for (;;) {
        const outcome = await post(agent, url, body)
        if (outcome.status === 200) served.add(i)
        if (stopping) afterSignal.push(outcome)
        if (outcome.error !== '') return
        if (pauseMs > 0) await sleep(pauseMs)
      }
    } finally {
      agent.destroy()
    }
  })
  await waitFor('every client to have been served on its connection', () => served.size === 32, 30_000)
  stopping = true
  t.equal(await producer.stop('SIGTERM'), 0, 'exit code 0')
  await Promise.all(clients)

  const kinds = new Map<string, number>()
  for (const o of afterSignal) {
    const failure = `${o.error}${o.reused ? ' on a reused connection' : ''}`
    const kind = o.error !== '' ? failure : `${o.status} connection: ${o.connection}`
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  }
  const outcomes = JSON.stringify(Object.fromEntries(kinds))
  const refused = kinds.get('503 connection: close') ?? 0
  t.ok(refused > 0, `requests on open connections after SIGTERM got 503 (${outcomes})`)
  const expected = /^(200 connection: (keep-alive|close)|503 connection: close|ECONNREFUSED)$/
  const unexpected = [...kinds.keys()].filter((k) => !expected.test(k))
  t.same(unexpected, [], 'nothing but answers, 503 + Connection: close, and refused connections')
})
