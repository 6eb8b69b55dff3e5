import t from 'tap'
import {
  InvalidPageEventError, checkDerivedPageEvent, decodePageEvent, decodeValidatedPageEvent, encodePageEvent, eventTime,
  pageEventMessage, parsePageEvent,
} from '@pagestream/core'

const valid = { name: 'blog', user: 'U2', date: '2023-09-30T22:40:16.975Z', duration: 7587 }

t.test('an ISO 8601 event passes unchanged', async (t) => {
  t.same(parsePageEvent(valid), valid)
})

t.test('epoch milliseconds become ISO 8601 in UTC', async (t) => {
  const event = parsePageEvent({ ...valid, date: 1696113616975 })
  t.equal(event.date, '2023-09-30T22:40:16.975Z')
  t.equal(eventTime(event), 1696113616975)
})

t.test('leap days exist in leap years only', async (t) => {
  t.equal(parsePageEvent({ ...valid, date: '2024-02-29T12:00:00Z' }).date, '2024-02-29T12:00:00.000Z')
  t.throws(() => parsePageEvent({ ...valid, date: '2023-02-29T12:00:00Z' }), /real calendar/)
})

t.test('offsets are normalised to UTC', async (t) => {
  t.equal(parsePageEvent({ ...valid, date: '2023-10-01T00:40:16+02:00' }).date, '2023-09-30T22:40:16.000Z')
})

t.test('unknown properties are dropped, not refused', async (t) => {
  t.same(parsePageEvent({ ...valid, referrer: 'x' }), valid)
})

const refusals: Array<[string, unknown, string, RegExp]> = [
  ['a date that is not a date', {
    ...valid, date: 'yesterday',
  }, 'date', /ISO 8601 date-time or epoch milliseconds.*"yesterday"/],
  ['an impossible calendar date', { ...valid, date: '2023-13-45T99:99:00Z' }, 'date', /real calendar date-time/],
  ['a day the month does not have', { ...valid, date: '2023-02-30T10:00:00Z' }, 'date', /real calendar date-time/],
  ['a 25th hour', { ...valid, date: '2023-02-10T24:30:00Z' }, 'date', /real calendar date-time/],
  ['a negative duration', { ...valid, duration: -1 }, 'duration', /non-negative integer/],
  ['a fractional duration', { ...valid, duration: 1.5 }, 'duration', /non-negative integer/],
  ['a missing user', { name: 'blog', date: valid.date, duration: 1 }, 'user', /required/],
  ['an empty name', { ...valid, name: '' }, 'name', /page name/],
  ['a string where a number belongs', { ...valid, duration: '12' }, 'duration', /non-negative integer/],
  ['an array', [valid], '', /JSON object/],
  ['a lone surrogate in the name', { ...valid, name: 'x\ud800' }, 'name', /well-formed Unicode.*lone surrogate/],
  ['a lone surrogate in the user', { ...valid, user: '\udc00' }, 'user', /well-formed Unicode/],
  ['a boolean name', { ...valid, name: true }, 'name', /page name.*got true/],
  ['a null duration', { ...valid, duration: null }, 'duration', /non-negative integer.*got null/],
]
for (const [what, input, field, message] of refusals) {
  t.test(`refuses ${what}, naming the field`, async (t) => {
    const error = t.throws(() => parsePageEvent(input)) as InvalidPageEventError
    t.type(error, InvalidPageEventError)
    t.equal(error.field, field)
    t.match(error.message, message)
    if (field !== '') t.match(error.message, new RegExp(`^${field}: `))
  })
}

t.test('encode and decode round-trip through bytes', async (t) => {
  t.same(decodePageEvent(encodePageEvent(valid)), valid)
  t.throws(() => decodePageEvent(Buffer.from('{not json')), /not JSON/)
  t.throws(() => decodePageEvent(null), /no value/)
  t.equal(parsePageEvent({ ...valid, name: 'emoji \u{1F600}' }).name, 'emoji \u{1F600}',
    'a surrogate pair is a character')
})

t.test('a value that is not valid UTF-8 is refused, not decoded with replacement characters', async (t) => {
  const rest = '","user":"U","date":1,"duration":1}'
  const bytes = Buffer.concat([Buffer.from('{"name":"x'), Buffer.from([0xff]), Buffer.from(rest)])
  t.throws(() => decodePageEvent(bytes), /not valid UTF-8/)
})

t.test('a record a stage validated is parsed once; one without the shape gets the full check', async (t) => {
  const event = { name: 'blog', user: 'U1', date: '2024-01-01T00:00:00.000Z', duration: 5 }
  t.same(decodeValidatedPageEvent(Buffer.from(JSON.stringify({ ...event, extra: 1 }))), event, 'parsed, extras dropped')
  // epoch milliseconds are a valid input date: the full check normalises them
  t.same(decodeValidatedPageEvent(Buffer.from(JSON.stringify({ ...event, date: 1704067200000 }))), event)
  t.throws(() => decodeValidatedPageEvent(Buffer.from('{')), InvalidPageEventError)
  t.throws(() => decodeValidatedPageEvent(Buffer.from('[]')), InvalidPageEventError)
  t.throws(() => decodeValidatedPageEvent(null), /no value/)
})

t.test('a derived event is checked against the contract without parsing its date again', async (t) => {
  const event = { name: 'BLOG', user: 'U1', date: '2024-01-01T00:00:00.000Z', duration: 10 }
  t.equal(checkDerivedPageEvent(event), event)
  t.throws(() => checkDerivedPageEvent({ ...event, name: 'S'.repeat(257) }), /name: must be page name/)
  t.throws(() => checkDerivedPageEvent({ ...event, duration: 2 ** 54 }), /duration/)
})

t.test('the Kafka message is keyed by page with content type and a unique id', async (t) => {
  const first = pageEventMessage(valid)
  const second = pageEventMessage(valid)
  t.equal(first.key, 'blog')
  t.equal(first.headers['content-type'], 'application/json')
  t.match(first.headers['event-id'], /^[0-9a-f-]{36}$/)
  t.not(first.headers['event-id'], second.headers['event-id'])
  t.same(JSON.parse(first.value.toString()), valid)
})
