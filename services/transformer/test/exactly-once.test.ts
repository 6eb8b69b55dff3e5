import t from 'tap'
import { type RunningRole, type Teardown, readTopic, testKafka, waitFor } from '@pagestream/test-kit'
import {
  asRecords, exactlyOnceReport, inputEvents, openTransactionOn, pipeline, startTransformer, status, writeSteadily,
} from './support.js'

/** Starts an instance and measures how long it takes to be ready and to commit its first transaction. */
async function restart (
  t: Teardown, topics: Awaited<ReturnType<typeof pipeline>>, instance: string, env: Record<string, string> = {}
) {
  const spawned = Date.now()
  const role = await startTransformer(t, topics, instance, env)
  const readyMs = Date.now() - spawned
  await waitFor(
    'a first committed transaction', async () => (await status(role)).counts.transactionsCommitted > 0, 30_000, 20
  )
  return { role, readyMs, firstCommitMs: Date.now() - spawned }
}

t.test('SIGKILL several times while events flow: the output holds each input exactly once', async (t) => {
  const topics = await pipeline(t, 'tr-crash')
  const admin = testKafka().admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const events = inputEvents(30_000, 'crash')
  let current: RunningRole = await startTransformer(t, topics, 'crash')
  const writing = writeSteadily(topics.input, asRecords(events), { chunk: 375, everyMs: 100 })
  const restarts: Array<{ readyMs: number, firstCommitMs: number }> = []
  let killsInsideTransactions = 0
  for (let kill = 1; kill <= 4; kill += 1) {
    const before = (await status(current)).counts.transactionsCommitted
    await waitFor(
      'the instance to make progress',
      async () => (await status(current)).counts.transactionsCommitted > before,
      20_000,
      20
    )
    // aim the kill at a moment when a transaction has written records but not committed them
    const aimed = await waitFor(
      'a transaction open on the output', async () => await openTransactionOn(admin, topics.output), 5_000, 1
    ).catch(() => false)
    t.equal(await current.stop('SIGKILL'), 'SIGKILL', `kill ${kill}${aimed ? ' while a transaction was open' : ''}`)
    if (aimed) killsInsideTransactions += 1
    const next = await restart(t, topics, 'crash')
    restarts.push({ readyMs: next.readyMs, firstCommitMs: next.firstCommitMs })
    current = next.role
  }
  const written = await writing
  t.comment(`wrote ${events.length} events in ${written.ms} ms; ` +
    `${killsInsideTransactions} of 4 kills aimed inside an open transaction; ` +
    'restarts (spawn -> ready / -> first commit): ' +
    `${restarts.map((r) => `${r.readyMs}/${r.firstCommitMs} ms`).join(', ')}`)
  t.ok((await status(current)).counts.transformed > 0, 'the last instance took over')

  const outputs = await readTopic(topics.output, { count: events.length, timeoutMs: 60_000, settleMs: 2_000 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] },
    'read_committed: every input exactly once, transformed, keyed by the new name')
  const uncommitted = await readTopic(topics.output, { count: events.length, readCommitted: false, settleMs: 1_000 })
  t.comment(`a read_uncommitted reader sees ${uncommitted.length - events.length} records ` +
    'of the transactions the kills cut short')
  t.ok(uncommitted.length > events.length,
    'the kills did cut transactions short: their records are in the log, aborted')
  t.equal((await readTopic(topics.deadLetters, { count: 0, settleMs: 500 })).length, 0,
    'no valid record was dead-lettered on the way')
})

t.test('SIGTERM mid-stream: exits 0 in time, and a successor continues exactly where it stopped', async (t) => {
  const topics = await pipeline(t, 'tr-term')
  const events = inputEvents(4_000, 'term')
  const admin = testKafka().admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const first = await startTransformer(t, topics, 'term', { LOG_LEVEL: 'info' })
  const writingEarly = writeSteadily(topics.input, asRecords(events.slice(0, 3_000)), { chunk: 400, everyMs: 100 })
  await waitFor(
    'a quarter of the stream to be transformed',
    async () => (await status(first)).counts.transformed >= events.length / 4,
    30_000,
    20
  )
  await waitFor(
    'a transaction open on the output', async () => await openTransactionOn(admin, topics.output), 5_000, 1
  ).catch(() => false)

  const stopping = Date.now()
  t.equal(await first.stop('SIGTERM'), 0, 'exit code 0')
  const shutdownMs = Date.now() - stopping
  t.ok(shutdownMs < 10_000, `stopped within SHUTDOWN_TIMEOUT_MS (${shutdownMs} ms)`)
  const stopLine = first.logs().find((line) => line.msg === 'stopping the transformer') as {
    batchInFlight: boolean,
  } | undefined
  const stopped = first.logs().find((line) => line.msg === 'transformer stopped') as {
    transformed: number, transactionsAborted: number,
  } | undefined
  t.ok(stopped !== undefined, 'logged its final counts')
  t.equal(stopped?.transactionsAborted, 0, 'the batch in flight was committed, not aborted')
  t.ok((stopped?.transformed ?? 0) < events.length, 'it stopped mid-stream')

  // the last quarter only after the stop, so that it stops mid-stream however slowly it shuts down
  const writing = writingEarly.then(
    () => writeSteadily(topics.input, asRecords(events.slice(3_000)), { chunk: 400, everyMs: 100 })
  )
  const second = await startTransformer(t, topics, 'term')
  await writing
  await waitFor(
    'the successor to transform the rest',
    async () => (await status(second)).counts.transformed >= events.length - (stopped?.transformed ?? 0),
    30_000,
    50
  )
  t.equal((await status(second)).counts.transformed, events.length - (stopped?.transformed ?? 0),
    'the successor redid nothing its predecessor had committed')
  const outputs = await readTopic(topics.output, { count: events.length, settleMs: 1_500 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] })
  t.comment(`graceful shutdown took ${shutdownMs} ms ` +
    `(a transaction was ${stopLine?.batchInFlight === true ? '' : 'not '}in flight at SIGTERM)`)
})

t.test('a killed instance that never returns (a new pod name) is replaced: ' +
  'still exactly once, after the timeouts', async (t) => {
  const topics = await pipeline(t, 'tr-gone')
  const events = inputEvents(6_000, 'gone')
  // the shortest transaction timeout (11 s), so the open transaction of the vanished instance is aborted soon;
  // dynamic membership, as with pod names that change on every restart
  const env = {
    TRANSFORMER_BATCH_SIZE: '50', TRANSFORMER_DELIVERY_TIMEOUT_MS: '1000', TRANSFORMER_STATIC_MEMBERSHIP: 'false',
  }
  const vanished = await startTransformer(t, topics, 'gone-1', env)
  const writing = writeSteadily(topics.input, asRecords(events), { chunk: 300, everyMs: 100 })
  await waitFor(
    'the first instance to make progress', async () => (await status(vanished)).counts.transformed >= 1_000, 20_000, 20
  )
  await vanished.stop('SIGKILL')
  const killed = Date.now()
  const successor = await startTransformer(t, topics, 'gone-2', env)
  t.equal((await status(successor)).groupInstanceId, null, 'a dynamic member')
  await waitFor(
    'the successor to commit', async () => (await status(successor)).counts.transactionsCommitted > 0, 60_000, 50
  )
  const takeoverMs = Date.now() - killed
  await writing
  const outputs = await readTopic(topics.output, { count: events.length, timeoutMs: 60_000, settleMs: 1_500 })
  t.same(exactlyOnceReport(events, outputs), { count: events.length, duplicates: [], missing: [], wrong: [] })
  t.comment(`the successor with a new name committed ${takeoverMs} ms after the kill ` +
    '(session timeout, then the transaction timeout)')
})
