import t from 'tap'
import type { InjectOptions } from 'fastify'
import { loadConfig } from '@pagestream/core'
import { role } from '../src/app.js'
import { producerService } from './producer-service.js'
import { deleteTopics, readTopic, uniqueName, withAdmin } from '@pagestream/test-kit'

const event = { name: 'blog', user: 'U2', date: '2023-09-30T22:40:16.975Z', duration: 7587 }
const json = (body: string | Buffer, contentType = 'application/json') =>
  ({ payload: body, headers: { 'content-type': contentType } })
const DURATION = 'a non-negative integer of milliseconds'
const PAGE = 'page name, 1 to 256 characters'
const DATE = 'an ISO 8601 date-time or epoch milliseconds'

t.test('bodies are not coerced: wrong types are a 400 naming the field, and nothing is written', async (t) => {
  const topic = uniqueName('edge-types')
  t.teardown(() => deleteTopics([topic]))
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic })
  const cases: Array<[string, unknown, string]> = [
    ['the issue\'s body', { name: true, user: ['u'], date: '2024-01-01T00:00:00Z', duration: null },
      `body.name must be ${PAGE} (got true)`],
    ['a user array', { ...event, user: ['u'] }, 'body.user must be user name, 1 to 256 characters (got ["u"])'],
    ['a null duration', { ...event, duration: null }, `body.duration must be ${DURATION} (got null)`],
    ['a duration string', { ...event, duration: '5' }, `body.duration must be ${DURATION} (got "5")`],
    ['a numeric name', { ...event, name: 123 }, `body.name must be ${PAGE} (got 123)`],
    ['a missing duration', { name: 'blog', user: 'U2', date: event.date }, `body.duration is required (${DURATION})`],
    ['a numeric date string', { ...event, date: '1696113616975' }, `body.date must be ${DATE} (got "1696113616975")`],
    ['a bad event in a batch', [event, { ...event, duration: '5' }], `body.1.duration must be ${DURATION} (got "5")`],
    ['a batch member that is not an object', [event, 'blog'], 'body.1 a PageEvent must be a JSON object'],
    ['a number for a body', 5, 'body a PageEvent must be a JSON object'],
  ]
  for (const [what, body, message] of cases) {
    const response = await fastify.inject({ method: 'POST', url: `/events/${topic}`, ...json(JSON.stringify(body)) })
    t.equal(response.statusCode, 400, `${what}: 400`)
    t.equal(response.json().message, message, what)
  }
  t.equal((await readTopic(topic, { count: 0, settleMs: 1500 })).length, 0, 'nothing was written')
})

t.test('names of up to 256 characters on GET /publish; a long topic is the 400 of an invalid name', async (t) => {
  const topic = uniqueName('edge-long')
  t.teardown(() => deleteTopics([topic]))
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic })
  for (const length of [101, 200, 256]) {
    const name = 'n'.repeat(length)
    const response = await fastify.inject(`/publish/${topic}/${name}`)
    t.equal(response.statusCode, 200, `a ${length}-character name is published`)
    t.equal(response.json().name, name)
  }
  const wide = 'é'.repeat(256)
  const encoded = await fastify.inject(`/publish/${topic}/${encodeURIComponent(wide)}`)
  t.equal(encoded.statusCode, 200, '256 two-byte characters, percent-encoded (1536 characters in the path)')
  t.equal(encoded.json().name, wide)
  const tooLong = await fastify.inject(`/publish/${topic}/${'n'.repeat(257)}`)
  t.equal(tooLong.statusCode, 400, 'a 257-character name is a 400')
  t.match(tooLong.json().message, /^params\.name must be page name, 1 to 256 characters \(got "n{257}"\)$/)
  // the processors count UTF-16 code units, as JavaScript and Java do: 129 emoji are 258 of them
  const emoji = await fastify.inject(`/publish/${topic}/${encodeURIComponent('\u{1F600}'.repeat(129))}`)
  t.equal(emoji.statusCode, 400, 'a name the processors would dead-letter is refused at the door')
  for (const bad of ['%FFx', '%ED%A0%80x']) {
    const response = await fastify.inject(`/publish/${topic}/${bad}`)
    t.equal(response.statusCode, 400, `a name that is not UTF-8 (${bad}) is a 400: ${response.body}`)
  }
  const longTopic = await fastify.inject(`/publish/${'t'.repeat(300)}/blog`)
  t.equal(longTopic.statusCode, 400, 'a 300-character topic: 400, as for any invalid name')
  t.match(longTopic.json().message, /^invalid topic name/)
  const records = await readTopic(topic, { count: 4 })
  t.same(records.map((r) => r.key).sort(), ['n'.repeat(101), 'n'.repeat(200), 'n'.repeat(256), wide].sort(),
    'the four accepted names were written, and only they')
})

t.test('content types and encodings: JSON in UTF-8 only, refusals say why, key and name always agree', async (t) => {
  const topic = uniqueName('edge-bytes')
  t.teardown(() => deleteTopics([topic]))
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic })
  const url = `/events/${topic}`
  const body = JSON.stringify(event)
  const rest = ',"user":"U2","date":1,"duration":1}'
  const cases: Array<[string, InjectOptions['payload'], string, number, RegExp]> = [
    ['text/plain', body, 'text/plain', 415, /content-type text\/plain is not supported; send application\/json/],
    ['no content type', body, '', 415, /content-type none is not supported/],
    ['UTF-16', Buffer.from(`\ufeff${body}`, 'utf16le'), 'application/json; charset=utf-16', 415,
      /^charset utf-16 is not supported; send application\/json in UTF-8$/],
    ['Latin-1', Buffer.from(body, 'latin1'), 'application/json; charset=ISO-8859-1', 415, /charset iso-8859-1 is not/],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"name":"bl'), Buffer.from([0xff, 0xfe]), Buffer.from(`og"${rest}`)]),
      'application/json', 400, /^body is not valid UTF-8$/],
    ['a lone surrogate in the name', `{"name":"\\ud800x"${rest}`, 'application/json', 400,
      /^body\.name must be well-formed Unicode \(got a lone surrogate/],
    ['__proto__', `{"__proto__":{"polluted":true},"name":"blog"${rest}`, 'application/json', 400,
      /^body holds a "__proto__" property, which is refused \(prototype pollution\)$/],
    ['constructor', `[{"constructor":{"prototype":{"polluted":true}},"name":"blog"${rest}]`, 'application/json', 400,
      /^body holds a "constructor" property, which is refused/],
    ['__proto__ spelled with escapes', `{"\\u005f_proto\\u005f_":{"polluted":true},"name":"blog"${rest}`,
      'application/json', 400, /^body holds a "__proto__" property/],
    ['JSON that does not parse', '{"name":', 'application/json', 400, /^body is not valid JSON \(/],
    ['an empty body', '', 'application/json', 400, /^body is not valid JSON/],
  ]
  for (const [what, payload, contentType, status, message] of cases) {
    const headers = contentType === '' ? {} : { 'content-type': contentType }
    const response = await fastify.inject({ method: 'POST', url, payload, headers })
    t.equal(response.statusCode, status, `${what}: ${status}`)
    t.match(response.json().message, message, `${what}: ${response.json().message}`)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched')
  const accepted = [
    await fastify.inject({ method: 'POST', url, ...json(body, 'application/json; charset=UTF-8') }),
    await fastify.inject({
      method: 'POST',
      url,
      ...json(JSON.stringify({ ...event, name: 'smile \ud83d\ude00' }), 'application/json;charset="utf-8"'),
    }),
  ]
  t.same(accepted.map((r) => r.statusCode), [200, 200], 'UTF-8, named or not, and surrogate pairs are accepted')
  const records = await readTopic(topic, { count: 2 })
  t.equal(records.length, 2, 'only the accepted events were written')
  for (const record of records) {
    t.equal(record.key, JSON.parse(record.value ?? '{}').name, `key and name agree (${record.key})`)
  }
})

t.test('a batch refused in part: 503 saying how many were acknowledged and that the rest may be written', async (t) => {
  const topic = uniqueName('edge-partial')
  t.teardown(() => deleteTopics([topic]))
  // the broker refuses records over 600 bytes on this topic: the long event fails, the others are acknowledged
  const configEntries = [{ name: 'max.message.bytes', value: '600' }]
  const spec = { topic, numPartitions: 3, replicationFactor: 1, configEntries }
  await withAdmin((admin) => admin.createTopics({ topics: [spec] }))
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic })
  const batch = [event, { ...event, name: 'b'.repeat(256), user: 'u'.repeat(256) }, { ...event, name: 'news' }]
  const response = await fastify.inject({ method: 'POST', url: `/events/${topic}`, ...json(JSON.stringify(batch)) })
  t.equal(response.statusCode, 503)
  t.equal(response.headers['retry-after'], '5')
  t.match(response.json().message, new RegExp('^the broker did not acknowledge 1 of 3 events: 2 were acknowledged, ' +
    'the other 1 may have been written; a retry can duplicate them'))
  t.equal((await readTopic(topic, { count: 2 })).length, 2, 'the two acknowledged events are on the topic')
})

t.test('CORS_ORIGINS opens publishing to the pages of the listed origins, and only to them', async (t) => {
  const topic = uniqueName('edge-cors')
  t.teardown(() => deleteTopics([topic]))
  const allowed = 'http://localhost:3000'
  const fastify = await producerService(t, { PRODUCER_TOPICS: topic, CORS_ORIGINS: allowed })
  const preflight = (origin: string) => fastify.inject({
    method: 'OPTIONS',
    url: `/events/${topic}`,
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  })
  const ok = await preflight(allowed)
  t.equal(ok.statusCode, 204)
  t.equal(ok.headers['access-control-allow-origin'], allowed)
  t.match(ok.headers['access-control-allow-methods'], /POST/)
  t.match(ok.headers['access-control-allow-headers'], /content-type/)
  t.equal((await preflight('https://elsewhere.example')).headers['access-control-allow-origin'], undefined)

  const posted = await fastify.inject({
    method: 'POST', url: `/events/${topic}`, payload: event, headers: { origin: allowed },
  })
  t.equal(posted.statusCode, 200)
  t.equal(posted.headers['access-control-allow-origin'], allowed)
  t.match(posted.headers['access-control-expose-headers'], /retry-after/)
  const lab = await fastify.inject({ url: `/publish/${topic}/blog`, headers: { origin: 'https://elsewhere.example' } })
  t.equal(lab.statusCode, 200, 'the server still answers: CORS only tells the browser what a page may read')
  t.equal(lab.headers['access-control-allow-origin'], undefined)
  const refused = await fastify.inject({ url: `/publish/${topic}/${'n'.repeat(257)}`, headers: { origin: allowed } })
  t.equal(refused.statusCode, 400)
  t.equal(refused.headers['access-control-allow-origin'], allowed, 'errors are readable by the allowed page too')

  const closed = await producerService(t, { PRODUCER_TOPICS: topic })
  const none = await closed.inject({ url: `/publish/${topic}/blog`, headers: { origin: allowed } })
  t.equal(none.headers['access-control-allow-origin'], undefined, 'by default no CORS header')
  const unanswered = await closed.inject({
    method: 'OPTIONS', url: `/events/${topic}`, headers: { origin: allowed, 'access-control-request-method': 'POST' },
  })
  t.equal(unanswered.statusCode, 404, 'and no preflight route')
})

t.test('CORS_ORIGINS must be origins: a path or a bare host stops start-up naming the variable', async (t) => {
  for (const bad of ['https://dash.example.com/', 'dash.example.com', 'https://a.example,ftp://b']) {
    t.throws(() => loadConfig(role.config, { CORS_ORIGINS: bad }), /CORS_ORIGINS: must be empty, \* or comma-separated/)
  }
  t.same(loadConfig(role.config, { CORS_ORIGINS: ' * ' }).CORS_ORIGINS, ['*'])
  t.same(loadConfig(role.config, {}).CORS_ORIGINS, [])
})
