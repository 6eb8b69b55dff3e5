import t from 'tap'
import { DLQ_HEADERS, decodePageEvent, type KafkaMessage } from '@pagestream/core'
import { traceId, transformBatch, transformPageEvent } from '../src/transform.js'

const event = { name: 'blog', user: 'u2', date: '2023-09-30T22:40:16.975Z', duration: 7587 }

function record (offset: number, value: string | null, headers: Record<string, string | Buffer> = {}): KafkaMessage {
  return {
    key: Buffer.from('k'),
    value: value === null ? null : Buffer.from(value),
    offset: String(offset),
    timestamp: '0',
    attributes: 0,
    headers,
  }
}

t.test('transformPageEvent doubles the duration and upper-cases name and user, nothing else', async (t) => {
  const input = { ...event }
  t.same(transformPageEvent(input), { name: 'BLOG', user: 'U2', date: '2023-09-30T22:40:16.975Z', duration: 15174 })
  t.same(input, event, 'the input is not mutated')
  t.same(
    transformPageEvent({ ...event, name: 'straße', duration: 0 }),
    { ...event, name: 'STRASSE', user: 'U2', duration: 0 }
  )
})

t.test('transformBatch: valid records become R3 messages keyed by the new name, ' +
  'tracing the input event id', async (t) => {
  const batch = transformBatch('R1', 2, [
    record(10, JSON.stringify(event), { 'event-id': 'id-10', 'content-type': 'application/json' }),
    record(11, JSON.stringify({ ...event, name: 'shop', date: Date.parse(event.date) })),
  ])
  t.equal(batch.nextOffset, '12', 'commits one past the last record')
  t.same(batch.deadLetters, [])
  t.equal(batch.outputs.length, 2)
  const [first, second] = batch.outputs
  t.equal(first?.key, 'BLOG')
  t.same(first?.headers, { 'content-type': 'application/json', 'event-id': 'id-10' })
  t.same(decodePageEvent(first!.value), { name: 'BLOG', user: 'U2', date: event.date, duration: 15174 })
  t.equal(second?.key, 'SHOP')
  t.equal(second?.headers['event-id'], 'R1:2:11', 'without an input id, one derived from the source position')
  t.same(decodePageEvent(second!.value).date, event.date, 'epoch-millisecond dates come out as ISO 8601')
})

t.test('transformBatch: malformed records become dead letters with the reason and ' +
  'their source, in input order', async (t) => {
  const batch = transformBatch('R1', 0, [
    record(0, 'not json', { 'event-id': 'bad-0' }),
    record(1, JSON.stringify(event)),
    record(2, JSON.stringify({ name: 'blog', date: event.date, duration: 1 })),
    record(3, JSON.stringify({ ...event, date: '2023-13-01T10:00:00Z' })),
    record(4, null),
    record(5, JSON.stringify({ ...event, duration: Number.MAX_SAFE_INTEGER })),
  ])
  t.equal(batch.outputs.length, 1)
  t.equal(batch.nextOffset, '6')
  t.same(batch.deadLetters.map((m) => m.headers[DLQ_HEADERS.offset]), ['0', '2', '3', '4', '5'])
  const reasons = batch.deadLetters.map((m) => String(m.headers[DLQ_HEADERS.error]))
  t.match(reasons[0], /not JSON/)
  t.match(reasons[1], /^user: is required/)
  t.match(reasons[2], /^date: must be a real calendar date-time/)
  t.match(reasons[3], /no value/)
  t.match(reasons[4], /^duration: /, 'a doubled duration beyond the safe-integer range is refused, not written wrong')
  const [first] = batch.deadLetters
  t.equal(first?.headers[DLQ_HEADERS.topic], 'R1')
  t.equal(first?.headers[DLQ_HEADERS.partition], '0')
  t.equal((first?.headers as Record<string, unknown> | undefined)?.['event-id'], 'bad-0',
    'the original headers travel with the dead letter')
  t.equal(first?.value?.toString(), 'not json', 'the poison record is kept as it was')
})

t.test('transformBatch refuses an empty batch; traceId reads Buffer and repeated headers', async (t) => {
  t.throws(() => transformBatch('R1', 0, []), /at least one record/)
  t.equal(traceId({ topic: 'R1', partition: 0, message: record(7, '{}', { 'event-id': Buffer.from('buf-id') }) }),
    'buf-id')
  const repeated = { ...record(8, '{}'), headers: { 'event-id': [Buffer.from('first'), 'second'] } } as KafkaMessage
  t.equal(traceId({ topic: 'R1', partition: 0, message: repeated }), 'first')
})
