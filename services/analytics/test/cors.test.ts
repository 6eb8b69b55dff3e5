import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { analyticsTopics, startAnalytics, topicEnv } from './fixture.js'
import { SseClient } from './sse-client.js'

const ALLOWED = 'https://dash.example.com'
const OTHER = 'https://evil.example.net'

async function listening (fastify: FastifyInstance): Promise<string> {
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  const address = fastify.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

const preflight = (fastify: FastifyInstance, url: string, origin: string) => fastify.inject({
  method: 'OPTIONS',
  url,
  headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id' },
})

t.test('CORS_ORIGINS: listed origins may read the streams and the query API, others not; the CSP stays', async (t) => {
  const topics = await analyticsTopics(t, 'cors-on')
  const env = { ...topicEnv(topics), CORS_ORIGINS: `${ALLOWED}, http://localhost:3000`, SSE_INTERVAL_MS: '100' }
  const fastify = await startAnalytics(t, env)
  const base = await listening(fastify)

  for (const url of ['/analytics', '/analyticsAggregate', '/api/pages/blog/windows']) {
    const allowed = await preflight(fastify, url, ALLOWED)
    t.equal(allowed.statusCode, 204, `preflight of ${url} from an allowed origin: 204`)
    t.equal(allowed.headers['access-control-allow-origin'], ALLOWED)
    t.match(allowed.headers['access-control-allow-headers'], /last-event-id/)
    t.match(allowed.headers['access-control-allow-methods'], /GET/)
    const refused = await preflight(fastify, url, OTHER)
    t.equal(refused.headers['access-control-allow-origin'], undefined, `preflight of ${url}, another origin: refused`)
  }
  const query = await fastify.inject({ url: '/api/pages/blog/windows', headers: { origin: ALLOWED } })
  t.equal(query.statusCode, 200)
  t.equal(query.headers['access-control-allow-origin'], ALLOWED, 'a simple request from an allowed origin is readable')
  t.match(query.headers.vary, /origin/i, 'and the answer varies by Origin, for caches')
  const foreign = await fastify.inject({ url: '/api/pages/blog/windows', headers: { origin: OTHER } })
  t.equal(foreign.headers['access-control-allow-origin'], undefined, 'another origin gets no allow-origin')

  const stream = await SseClient.open(`${base}/analytics`, { origin: ALLOWED })
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.equal(stream.response?.headers['access-control-allow-origin'], ALLOWED, 'the event stream carries the header too')
  t.match(stream.response?.headers['content-type'], /^text\/event-stream/)
  const foreignStream = await SseClient.open(`${base}/analytics`, { origin: OTHER })
  t.teardown(() => foreignStream.close())
  t.equal(foreignStream.response?.headers['access-control-allow-origin'], undefined, 'not for another origin')

  const dashboard = await fastify.inject({ url: '/', headers: { origin: ALLOWED } })
  t.match(dashboard.headers['content-security-policy'], /default-src 'self';script-src 'self';/, 'CSP kept')
  t.equal(dashboard.headers['access-control-allow-origin'], undefined, 'and is not opened to other origins')
})

t.test('without CORS_ORIGINS (the default) no CORS header is sent and preflights find no route', async (t) => {
  const topics = await analyticsTopics(t, 'cors-off')
  const fastify = await startAnalytics(t, topicEnv(topics))
  const base = await listening(fastify)
  t.equal((await preflight(fastify, '/analytics', ALLOWED)).statusCode, 404)
  const query = await fastify.inject({ url: '/api/pages/blog/windows', headers: { origin: ALLOWED } })
  t.equal(query.statusCode, 200)
  t.equal(query.headers['access-control-allow-origin'], undefined)
  const stream = await SseClient.open(`${base}/analytics`, { origin: ALLOWED })
  t.teardown(() => stream.close())
  t.equal(stream.response?.headers['access-control-allow-origin'], undefined)
})
