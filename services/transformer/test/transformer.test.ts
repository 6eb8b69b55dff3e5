import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { DLQ_HEADERS } from '@pagestream/core'
import { ROOT, createTopics, deleteTopics, readTopic, topicExists, waitFor, writeRecords } from '@pagestream/test-kit'
import {
  asRecords, exactlyOnceReport, inputEvents, pipeline, startTransformer, status, writeSteadily,
} from './support.js'

t.test('valid records come out transformed on the output topic; ' +
  'malformed ones go to the DLQ and the role goes on', async (t) => {
  const topics = await pipeline(t, 'tr-e2e')
  const transformer = await startTransformer(t, topics, 'e2e')
  const ready = await (await fetch(`${transformer.url}/health/ready`)).json() as {
    checks: Record<string, { ok: boolean, detail?: string }>,
  }
  t.same(ready.checks['consumer-group'], { ok: true, detail: `3 partition(s) of ${topics.input} assigned` },
    'ready only once the group was joined')

  const valid = inputEvents(30, 'e2e')
  const records = asRecords(valid)
  const poison = [
    { key: 'blog', value: 'not json at all', headers: { 'event-id': 'bad-json' } },
    {
      key: 'blog',
      value: JSON.stringify({ name: 'blog', date: '2024-01-01T00:00:00Z', duration: 5 }),
      headers: {
        'event-id': 'bad-missing-user',
      }
    },
    {
      key: 'shop',
      value: JSON.stringify({
        name: 'shop', user: 'u1', date: '2024-13-01T00:00:00Z', duration: 5,
      }),
      headers: { 'event-id': 'bad-date' }
    },
    {
      key: 'home',
      value: JSON.stringify({ name: 'home', user: 'u1', date: 'yesterday', duration: 5 }),
      headers: {
        'event-id': 'bad-date-text',
      }
    },
  ]
  // poison in the middle of the stream and on every page, so valid records surround each one
  await writeRecords(
    topics.input,
    [
      ...records.slice(0, 10), poison[0]!, poison[1]!,
      ...records.slice(10, 20), poison[2]!, poison[3]!,
      ...records.slice(20),
    ]
  )

  const outputs = await readTopic(topics.output, { count: valid.length })
  t.same(exactlyOnceReport(valid, outputs), { count: 30, duplicates: [], missing: [], wrong: [] },
    'every valid record transformed, once, keyed by its new name')
  const sample = outputs.find((r) => r.headers['event-id'] === 'e2e-3')
  t.equal(sample?.key, 'STRASSE', 'keyed by the new page name')
  t.equal(sample?.value, JSON.stringify({ name: 'STRASSE', user: 'U3', date: '2023-11-14T22:13:20.003Z', duration: 6 }))
  t.same(sample?.headers, { 'content-type': 'application/json', 'event-id': 'e2e-3' },
    'the headers of pageEventMessage, with the input event id')

  const letters = await readTopic(topics.deadLetters, { count: poison.length })
  t.equal(letters.length, poison.length, 'every malformed record is in the DLQ, once')
  const sources = new Map((await readTopic(topics.input, { count: records.length + poison.length, settleMs: 200 }))
    .map((r) => [r.headers['event-id'], r]))
  const reasons: Record<string, RegExp> = {
    'bad-json': /the value is not JSON/,
    'bad-missing-user': /^user: is required/,
    'bad-date': /^date: must be a real calendar date-time/,
    'bad-date-text': /^date: /,
  }
  for (const letter of letters) {
    const id = letter.headers['event-id'] ?? ''
    const source = sources.get(id)
    t.match(letter.headers[DLQ_HEADERS.error], reasons[id] ?? /never/, `${id}: the reason`)
    t.same([
      letter.headers[DLQ_HEADERS.topic], letter.headers[DLQ_HEADERS.partition], letter.headers[DLQ_HEADERS.offset],
    ],
    [topics.input, String(source?.partition), source?.offset], `${id}: where it came from`)
    t.equal(letter.value, source?.value, `${id}: the record as it was`)
    t.equal(letter.key, source?.key)
  }

  const current = await status(transformer)
  t.match(current, {
    transactionalId: `${topics.group}-e2e`,
    groupInstanceId: `${topics.group}-e2e`,
    assignment: [0, 1, 2],
    lastError: null,
    counts: { transformed: 30, deadLettered: 4, transactionsAborted: 0 },
  })
  t.equal((await fetch(`${transformer.url}/health/ready`)).status, 200, 'still ready after the poison')
  await writeRecords(
    topics.input,
    asRecords([{ id: 'after', event: { name: 'late', user: 'u9', date: '2024-01-01T00:00:00.000Z', duration: 1 } }])
  )
  const more = await readTopic(topics.output, { count: 31 })
  t.equal(more.filter((r) => r.headers['event-id'] === 'after').length, 1, 'and it still transforms what comes next')

  const metrics = await (await fetch(`${transformer.url}/metrics`)).text()
  t.match(metrics, /pagestream_transformer_records_transformed_total\{role="transformer"\} 31/)
  t.match(metrics, /pagestream_transformer_records_dead_lettered_total\{role="transformer"\} 4/)
  t.match(metrics, /pagestream_transformer_transactions_total\{outcome="aborted",role="transformer"\} 0/)
  t.match(metrics, /pagestream_transformer_transactions_total\{outcome="committed",role="transformer"\} [1-9]/)
})

t.test('throughput: a backlog drains at a measured rate', async (t) => {
  const topics = await pipeline(t, 'tr-rate')
  const events = inputEvents(50_000, 'rate')
  await writeRecords(topics.input, asRecords(events))
  const started = Date.now()
  const transformer = await startTransformer(t, topics, 'rate')
  const ready = Date.now()
  await waitFor(
    'the backlog to be transformed',
    async () => (await status(transformer)).counts.transformed >= events.length,
    60_000,
    20
  )
  const drained = Date.now()
  const { counts } = await status(transformer)
  t.equal(counts.transformed, events.length, 'no more, no less')
  const perSecond = Math.round(events.length / ((drained - ready) / 1000))
  t.comment(`throughput: ${events.length} events in ${drained - ready} ms after ready = ${perSecond} events/s, ` +
    `${counts.transactionsCommitted} transactions; ` +
    `${Math.round(events.length / ((drained - started) / 1000))} events/s counting the start-up ` +
    `(${ready - started} ms to ready)`)
  t.ok(perSecond > 500, `at least 500 events/s (${perSecond})`)
  const outputs = await readTopic(topics.output, { count: events.length, settleMs: 500 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] })
})

const run = promisify(execFile)

t.test('configuration: --help lists the variables; a bad topic name stops start-up naming it', async (t) => {
  const server = join(ROOT, 'services', 'transformer', 'dist', 'server.js')
  const help = await run(process.execPath, [server, '--help'])
  for (const variable of [
    'TRANSFORMER_INPUT_TOPIC',
    'TRANSFORMER_OUTPUT_TOPIC',
    'TRANSFORMER_GROUP_ID',
    'TRANSFORMER_INSTANCE_ID',
    'TRANSFORMER_BATCH_SIZE',
    'TRANSFORMER_TRANSACTION_MS',
  ]) {
    t.match(help.stdout, new RegExp(`${variable} +\\S`), variable)
  }
  t.match(help.stdout, /TRANSFORMER_INPUT_TOPIC .*\[default "R1"\]/)
  t.match(help.stdout, /TRANSFORMER_OUTPUT_TOPIC .*\[default "R3"\]/)
  const bad = await run(
    process.execPath, [server], { env: { ...process.env, TRANSFORMER_OUTPUT_TOPIC: 'no/slashes' } }
  ).catch((err: { code: number, stderr: string }) => err)
  t.equal((bad as { code: number }).code, 2)
  t.match((bad as { stderr: string }).stderr, /TRANSFORMER_OUTPUT_TOPIC: must be/)
})

t.test('a failing transaction is aborted and retried from the committed offset: ' +
  'no duplicates, readiness says so', async (t) => {
  const topics = await pipeline(t, 'tr-abort')
  const transformer = await startTransformer(t, topics, 'abort', { TRANSFORMER_DELIVERY_TIMEOUT_MS: '1000' })
  // without its dead-letter topic (the producer never creates topics) a batch with poison cannot commit
  await deleteTopics([topics.deadLetters])
  await waitFor('the DLQ topic to be gone', async () => !(await topicExists(topics.deadLetters)))
  const valid = inputEvents(10, 'abort')
  const records = asRecords(valid).map((record) => ({ ...record, key: 'one-partition' }))
  await writeRecords(
    topics.input,
    [...records.slice(0, 5), {
      key: 'one-partition', value: '{"broken', headers: { 'event-id': 'poison' },
    }, ...records.slice(5)]
  )

  await waitFor(
    'transactions to fail a few times',
    async () => (await status(transformer)).counts.transactionsAborted >= 3,
    30_000,
    50
  )
  const unready = await (await fetch(`${transformer.url}/health/ready`)).json() as {
    status: string, checks: Record<string, { ok: boolean, detail?: string }>,
  }
  t.equal(unready.status, 'not ready', 'not ready while its transactions fail')
  t.match(unready.checks.transactions, { ok: false, detail: /^transactions failing: / })
  // records before the poison may have come in an earlier batch of their own; nothing behind it can pass
  const blocked = (await readTopic(topics.output, { count: 0, settleMs: 500 })).map((r) => r.headers['event-id'])
  t.ok(blocked.every((id) => ['abort-0', 'abort-1', 'abort-2', 'abort-3', 'abort-4'].includes(id ?? '')),
    `nothing from behind the poison is visible to read_committed (${blocked.join(',')})`)
  t.equal(new Set(blocked).size, blocked.length, 'and nothing of the aborted attempts')

  await createTopics(t, [topics.deadLetters], 3)
  const outputs = await readTopic(topics.output, { count: valid.length, settleMs: 1_000 })
  t.same(exactlyOnceReport(valid, outputs), { count: valid.length, duplicates: [], missing: [], wrong: [] },
    'after recovery: each valid record once')
  const letters = await readTopic(topics.deadLetters, { count: 1, settleMs: 500 })
  t.same(letters.map((r) => r.headers['event-id']), ['poison'], 'the poison once in the DLQ')
  const attempts = await readTopic(topics.output, { count: valid.length, readCommitted: false, settleMs: 500 })
  t.ok(attempts.length > valid.length,
    `a read_uncommitted reader sees the aborted attempts too (${attempts.length} records)`)
  await waitFor('readiness to return',
    async () => (await fetch(`${transformer.url}/health/ready`)).status === 200, 10_000)
  const { counts } = await status(transformer)
  t.match(counts, { transformed: 10, deadLettered: 1 })
  t.ok(counts.transactionsAborted >= 3)
})

t.test('two instances wrongly sharing one instance id: the older steps down, ' +
  'the newer writes each input once', async (t) => {
  const topics = await pipeline(t, 'tr-twins')
  const env = { TRANSFORMER_STATIC_MEMBERSHIP: 'false', TRANSFORMER_BATCH_SIZE: '50' }
  const first = await startTransformer(t, topics, 'twin', env)
  const events = inputEvents(5_000, 'twin')
  const writingEarly = writeSteadily(topics.input, asRecords(events.slice(0, 2_500)), { chunk: 100, everyMs: 100 })
  await waitFor('the first to make progress', async () => (await status(first)).counts.transformed > 0, 20_000, 20)
  const second = await startTransformer(t, topics, 'twin', env)
  // the rest once the newer one started: the older one tries another transaction after it, however slow the start
  const writing = writingEarly.then(
    () => writeSteadily(topics.input, asRecords(events.slice(2_500)), { chunk: 100, everyMs: 100 })
  )
  await waitFor('the first to be fenced', async () => (await status(first)).counts.timesFenced === 1, 20_000, 20)
  const fenced = await (await fetch(`${first.url}/health/ready`)).json() as {
    status: string, checks: Record<string, { ok: boolean, detail?: string }>,
  }
  t.equal(fenced.status, 'not ready', 'the fenced instance is not ready')
  t.match(fenced.checks.transactions?.detail, /^fenced by another instance with transactional.id \S+; stepped down/)
  await waitFor(
    'the newer one to own every partition', async () => (await status(second)).assignment?.length === 3, 20_000, 50
  )
  await writing
  const outputs = await readTopic(topics.output, { count: events.length, timeoutMs: 30_000, settleMs: 1_500 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] },
    'each input once')
  t.equal((await fetch(`${second.url}/health/ready`)).status, 200, 'the newer one is ready')
  t.equal((await status(first)).assignment, null, 'the older one left the group')
})
