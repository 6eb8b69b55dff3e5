import { request as httpRequest } from 'node:http'
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { producerService } from './producer-service.js'
import {
  createTopics, deleteTopics, privateBroker, readTopic, startRole, uniqueName, waitFor,
} from '@pagestream/test-kit'

const event = { name: 'blog', user: 'U2', date: '2023-09-30T22:40:16.975Z', duration: 7587 }

t.test('publishing: the lab endpoint and POST /events, read back from the topic', async (t) => {
  const [r1, r2] = [uniqueName('prod-r1'), uniqueName('prod-r2')]
  t.teardown(() => deleteTopics([r1, r2]))
  const fastify = await producerService(t, { PRODUCER_TOPICS: `${r1},${r2}` })

  const lab = await fastify.inject(`/publish/${r1}/blog`)
  t.equal(lab.statusCode, 200)
  const published = lab.json()
  t.equal(published.name, 'blog')
  t.match(published.user, /^U[12]$/)
  t.ok(Number.isInteger(published.duration) && published.duration >= 0 && published.duration < 10_000)
  const [record] = await readTopic(r1, { count: 1 })
  t.equal(record?.key, 'blog', 'keyed by page name')
  t.same(JSON.parse(record?.value ?? ''), published, 'the topic holds exactly what was answered')
  t.equal(record?.headers['content-type'], 'application/json')
  t.match(record?.headers['event-id'], /^[0-9a-f-]{36}$/)

  const single = await fastify.inject({
    method: 'POST', url: `/events/${r2}`, payload: { ...event, date: 1696113616975 },
  })
  t.equal(single.statusCode, 200)
  const batch = await fastify.inject({
    method: 'POST', url: `/events/${r2}`, payload: [event, { ...event, name: 'news' }, { ...event, name: 'shop' }],
  })
  t.equal(batch.statusCode, 200)
  const results = [...single.json().results, ...batch.json().results] as Array<{
    eventId: string, partition: number, offset: string,
  }>
  t.equal(results.length, 4)
  const records = await readTopic(r2, { count: 4 })
  t.equal(records.length, 4, 'exactly the four events')
  for (const result of results) {
    const match = records.find((r) => r.headers['event-id'] === result.eventId)
    t.ok(match, `event ${result.eventId} is on the topic`)
    t.equal(match?.partition, result.partition)
    t.equal(match?.offset, result.offset, 'at the partition and offset the answer named')
  }
  t.same(records.map((r) => JSON.parse(r.value ?? '').date), Array(4).fill(event.date), 'epoch ms stored as ISO 8601')
})

t.test('refusals are 4xx JSON naming the problem, and nothing is written', async (t) => {
  const [allowed, offList] = [uniqueName('prod-ok'), uniqueName('prod-off')]
  await createTopics(t, [offList])
  t.teardown(() => deleteTopics([allowed]))
  const fastify = await producerService(
    t, { PRODUCER_TOPICS: allowed, EVENTS_MAX_BATCH: '3', BODY_LIMIT_BYTES: '2048' }
  )

  const cases: Array<[string, InjectOptions | string, number, RegExp]> = [
    ['a topic off the allow-list', `/publish/${offList}/blog`, 403,
      new RegExp(`"${offList}" is not open for publishing \\(allowed: ${allowed}\\)`)],
    ['a Kafka-internal topic', '/publish/__consumer_offsets/blog', 403, /internal to the broker/],
    ['an illegal topic name', { method: 'POST', url: '/events/bad$name', payload: event }, 400, /invalid topic name/],
    ['a bad date', {
      method: 'POST', url: `/events/${allowed}`, payload: { ...event, date: 'yesterday' },
    }, 400, /^body\.date must be an ISO 8601 date-time or epoch milliseconds \(got "yesterday"\)$/],
    ['a missing field', {
      method: 'POST', url: `/events/${allowed}`, payload: { name: 'blog', date: event.date, duration: 1 },
    }, 400, /body.*user is required|user/],
    ['a negative duration in a batch', {
      method: 'POST', url: `/events/${allowed}`, payload: [event, { ...event, duration: -5 }],
    }, 400, /duration/],
    ['too many events', {
      method: 'POST', url: `/events/${allowed}`, payload: [event, event, event, event],
    }, 400, /1 to 3 PageEvents|must NOT have more than 3 items/],
    ['a body over the limit', {
      method: 'POST', url: `/events/${allowed}`, payload: [{ ...event, name: 'x'.repeat(3000) }],
    }, 413, /too large/i],
    ['a body that is not JSON', {
      method: 'POST',
      url: `/events/${allowed}`,
      payload: 'name=blog',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    }, 415, /content-type/i],
    ['an empty batch', { method: 'POST', url: `/events/${allowed}`, payload: [] }, 400, /body/],
  ]
  for (const [what, request, status, message] of cases) {
    const response = await fastify.inject(request)
    t.equal(response.statusCode, status, `${what}: ${status}`)
    t.match(response.headers['content-type'], /application\/json/)
    t.match(response.json().message, message, `${what}: ${response.json().message}`)
  }
  const good = await fastify.inject({ method: 'POST', url: `/events/${allowed}`, payload: event })
  t.equal(good.statusCode, 200)
  t.equal((await readTopic(allowed, { count: 1 })).length, 1, 'only the one good event reached the allowed topic')
  t.equal((await readTopic(offList, { count: 0, settleMs: 1500 })).length, 0, 'nothing reached the off-list topic')
})

t.test('behind a trusted proxy, each client address has its own rate limit', async (t) => {
  const topic = uniqueName('prod-proxy')
  t.teardown(() => deleteTopics([topic]))
  const fastify = await producerService(
    t, { PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '1', HTTP_TRUST_PROXY: '127.0.0.1' }
  )
  const from = (client: string) => fastify.inject({
    url: `/publish/${topic}/p`, headers: { 'x-forwarded-for': client },
  })
  t.same(
    [(await from('203.0.113.1')).statusCode, (await from('203.0.113.2')).statusCode, (await from(
      '203.0.113.1'
    )).statusCode],
    [200, 200, 429]
  )
})

t.test('rate limit answers 429 JSON', async (t) => {
  const topic = uniqueName('prod-rate')
  t.teardown(() => deleteTopics([topic]))
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '2' })
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await fastify.inject(`/publish/${topic}/p`)).statusCode)
  t.same(statuses, [200, 200, 429])
  const limited = await fastify.inject(`/publish/${topic}/p`)
  t.match(limited.json(), { statusCode: 429, error: 'Too Many Requests' })
  t.equal((await fastify.inject('/health/live')).statusCode, 200, 'health is not rate limited')
})

t.test('broker unreachable: 503 with Retry-After within seconds, never a hang', async (t) => {
  const broker = await privateBroker(t)
  const topic = uniqueName('prod-down')
  const producer = await startRole(
    t, 'producer', { KAFKA_BROKERS: broker.brokers, PRODUCER_TOPICS: topic, PUBLISH_TIMEOUT_MS: '3000' }
  )
  t.equal((await fetch(`${producer.url}/publish/${topic}/blog`)).status, 200)

  await broker.stop()
  const started = Date.now()
  const refused = await fetch(`${producer.url}/publish/${topic}/blog`, { signal: AbortSignal.timeout(10_000) })
  const elapsed = Date.now() - started
  t.equal(refused.status, 503)
  t.equal(refused.headers.get('retry-after'), '5')
  t.match((await refused.json() as { message: string }).message, /broker|brokers/)
  t.ok(elapsed < 6_000, `answered in ${elapsed} ms`)
  await waitFor('readiness to drop', async () => (await fetch(`${producer.url}/health/ready`)).status === 503, 10_000)
  const fast = Date.now()
  t.equal((await fetch(`${producer.url}/publish/${topic}/blog`)).status, 503)
  t.ok(Date.now() - fast < 500, 'once the broker is known down, refusals are immediate')
})

function postOnNewConnection (url: string, body: string): Promise<{
  status: number, contentType: string, body: string, error: string,
}> {
  return new Promise((resolve) => {
    const request = httpRequest(url, {
      method: 'POST', agent: false, headers: { 'content-type': 'application/json', connection: 'close' },
    }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on(
        'end',
        () => resolve({
          status: response.statusCode ?? 0,
          contentType: String(response.headers['content-type'] ?? ''),
          body: text,
          error: '',
        })
      )
      response.on(
        'error',
        (err: NodeJS.ErrnoException) => resolve({
          status: 0, contentType: '', body: '', error: err.code ?? err.message,
        })
      )
    })
    request.on(
      'error',
      (err: NodeJS.ErrnoException) => resolve({ status: 0, contentType: '', body: '', error: err.code ?? err.message })
    )
    request.end(body)
  })
}

t.test('SIGTERM during a burst of publishes loses no acknowledged event', async (t) => {
  const topic = uniqueName('prod-term')
  t.teardown(() => deleteTopics([topic]))
  const producer = await startRole(t, 'producer', { PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '1000000' })
  const acknowledged: string[] = []
  let refused = 0
  const broken: Array<{ user: string, outcome: string }> = []
  const send = async (i: number) => {
    // a connection per request: a reset then means a request under way was cut, not a keep-alive race
    const response = await postOnNewConnection(`${producer.url}/events/${topic}`, JSON.stringify({
      ...event, user: `U${i}`,
    }))
    if (response.status === 200) {
      acknowledged.push(
        ...(JSON.parse(response.body) as { results: Array<{ eventId: string }> }).results.map((r) => r.eventId)
      )
    } else if (response.status === 503 && /json/.test(response.contentType)) refused++
    else if (response.status === 0 && response.error === 'ECONNREFUSED') refused++
    else broken.push({ user: `U${i}`, outcome: response.status === 0 ? response.error : `HTTP ${response.status}` })
  }
  const burst: Array<Promise<void>> = []
  let exited = false
  // a request every 2 ms until the producer has exited, and one more: some come after SIGTERM however slow the machine
  const launching = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the exit handler sets it while this loop awaits
    while (!exited) {
      burst.push(send(burst.length))
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    burst.push(send(burst.length))
  })()
  await waitFor('some events acknowledged', () => acknowledged.length >= 50)
  const stopping = Date.now()
  const exit = producer.stop('SIGTERM').finally(() => { exited = true })
  await launching
  await Promise.all(burst)
  t.equal(await exit, 0, 'exit code 0')
  const shutdownMs = Date.now() - stopping
  t.ok(shutdownMs < 10_000, `shut down in ${shutdownMs} ms`)
  t.ok(refused > 0, `requests after SIGTERM were refused (${refused}), acknowledged ${acknowledged.length}`)
  const records = await readTopic(topic, { count: acknowledged.length })
  const onTopic = new Set(records.map((r) => r.headers['event-id']))
  t.equal(acknowledged.filter((id) => !onTopic.has(id)).length, 0,
    `all ${acknowledged.length} acknowledged events are on the topic`)
  t.equal(records.length, acknowledged.length, 'and nothing else: no request was processed without its answer')
  const users = new Set(records.map((r) => (JSON.parse(r.value ?? '{}') as { user: string }).user))
  t.same(broken.filter((b) => users.has(b.user)), [],
    `connections reset during close (${broken.length}) carried requests never processed`)
  t.ok(broken.every((b) => b.outcome === 'ECONNRESET'),
    'the only other outcome is a reset of a connection not yet read')
})

t.test('one access log line per request (method, url, status, time); none when a request comes in', async (t) => {
  const topic = uniqueName('prod-log')
  t.teardown(() => deleteTopics([topic]))
  const producer = await startRole(t, 'producer', { PRODUCER_TOPICS: topic, LOG_LEVEL: 'info' })
  t.equal((await fetch(`${producer.url}/publish/${topic}/blog`)).status, 200)
  t.equal((await fetch(`${producer.url}/publish/_internal/blog`)).status, 403)
  await producer.stop()
  const requests = producer.logs().filter((line) => String(line.url ?? '').startsWith('/publish/'))
  t.same(requests.map((line) => [line.msg, line.method, line.url, line.statusCode]), [
    ['request completed', 'GET', `/publish/${topic}/blog`, 200],
    ['request completed', 'GET', '/publish/_internal/blog', 403],
  ], 'exactly one line per request')
  t.ok(requests.every((line) => typeof line.responseTime === 'number'), 'each with its response time')
  t.notOk(producer.logs().some((line) => line.msg === 'incoming request'), 'no line when a request comes in')
})
