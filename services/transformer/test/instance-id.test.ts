import { hostname } from 'node:os'
import t from 'tap'
import { readTopic, startRole, waitFor, writeRecords } from '@pagestream/test-kit'
import { asRecords, exactlyOnceReport, inputEvents, pipeline, startTransformer, status } from './support.js'

interface Readiness { checks: Record<string, { ok: boolean, detail?: string }> }

async function readiness (url: string): Promise<{ status: number, body: Readiness }> {
  const response = await fetch(`${url}/health/ready`)
  return { status: response.status, body: await response.json() as Readiness }
}

t.test('two processes with one TRANSFORMER_INSTANCE_ID: the fenced one is unready at once, recovers', async (t) => {
  const topics = await pipeline(t, 'tr-static-twin')
  const first = await startTransformer(t, topics, 'static-twin')
  t.equal((await status(first)).groupInstanceId, `${topics.group}-static-twin`, 'a static member, as the id was set')
  const before = inputEvents(300, 'before')
  await writeRecords(topics.input, asRecords(before))
  const transformed = async () => (await status(first)).counts.transformed
  await waitFor('the first records transformed', async () => await transformed() === before.length, 30_000)

  // the twin joins as the same static member: the broker fences the first one's consumer
  const twin = await startRole(t, 'transformer', {
    TRANSFORMER_INPUT_TOPIC: topics.input,
    TRANSFORMER_OUTPUT_TOPIC: topics.output,
    TRANSFORMER_GROUP_ID: topics.group,
    TRANSFORMER_INSTANCE_ID: 'static-twin',
    LOG_LEVEL: 'warn',
  }, { waitReady: false })
  const noticed = Date.now()
  const unready = await waitFor('the first one to say it is not ready', async () => {
    const ready = await readiness(first.url)
    return ready.status === 503 ? ready.body : undefined
  }, 20_000, 50)
  t.comment(`not ready ${Date.now() - noticed} ms after the twin started`)
  t.match(unready.checks.transactions?.detail,
    /^the consumer failed fatally \(.*Fatal error.*\); starting over with new clients|^fenced by another instance/)
  const counts = (await status(first)).counts
  t.ok(counts.consumerFatalErrors + counts.timesFenced >= 1, `counted in /status (${JSON.stringify(counts)})`)
  t.ok(first.logs().some((line) => /Static consumer fenced|Fatal error/.test(String(line.msg))), 'the client said why')

  // the twin dies (in the report, on a port clash): the first one must make progress again by itself
  await twin.stop('SIGKILL')
  await waitFor('the first one to be ready again', async () => (await readiness(first.url)).status === 200, 60_000, 100)
  const after = inputEvents(300, 'after')
  await writeRecords(topics.input, asRecords(after))
  await waitFor('the new records transformed', async () => await transformed() === before.length + after.length, 30_000)
  const outputs = await readTopic(topics.output, { count: before.length + after.length, settleMs: 1_500 })
  const count = before.length + after.length
  t.same(exactlyOnceReport([...before, ...after], outputs), { count, duplicates: [], missing: [], wrong: [] },
    'read_committed: every event once, by event id')
  const metrics = await (await fetch(`${first.url}/metrics`)).text()
  t.match(metrics, /pagestream_transformer_consumer_fatal_errors_total\{role="transformer"\} [1-9]/, 'and in /metrics')
})

t.test('TRANSFORMER_INSTANCE_ID unset: two processes on one host get their own ids, as dynamic members', async (t) => {
  const topics = await pipeline(t, 'tr-default-id')
  const a = await startTransformer(t, topics, '')
  const b = await startTransformer(t, topics, '')
  const [sa, sb] = [await status(a), await status(b)]
  t.not(sa.transactionalId, sb.transactionalId, 'no shared transactional.id')
  const host = hostname().replace(/[^a-zA-Z0-9._-]/g, '-')
  t.match(sa.transactionalId, new RegExp(`^${topics.group}-${host}-${a.child.pid}-[0-9a-f]{6}$`),
    '<group>-<hostname>-<pid>-<random>')
  t.same([sa.groupInstanceId, sb.groupInstanceId], [null, null], 'no static membership without an id set on purpose')
  const events = inputEvents(200, 'default-id')
  await writeRecords(topics.input, asRecords(events))
  const outputs = await readTopic(topics.output, { count: events.length, settleMs: 1_000 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] },
    'both work, neither fences the other')
  t.equal((await status(a)).counts.timesFenced + (await status(b)).counts.timesFenced, 0)
})
