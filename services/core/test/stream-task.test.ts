import { Writable } from 'node:stream'
import t from 'tap'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import {
  type BatchFunction, type KafkaClient, type KafkaMessage, type PartitionState, type StreamTaskObserver,
  StreamTask,
} from '@pagestream/core'
import {
  type Teardown, createTopics, faultyClient, readTopic, testKafka, uniqueName, waitFor, writeRecords,
} from '@pagestream/test-kit'

/** A logger whose lines the test can read. */
function capturingLog (): { log: FastifyBaseLogger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>)
      done()
    },
  })
  return { log: pino({ level: 'info' }, sink) as unknown as FastifyBaseLogger, lines }
}

const quietObserver: StreamTaskObserver = {
  committed: () => {}, aborted: () => {}, producerReplaced: () => {}, consumerFailed: () => {},
}

const isBad = (message: KafkaMessage) => message.value?.toString() === 'bad'
const copy = (message: KafkaMessage) => ({ key: message.key ?? null, value: message.value })

/** Copies each input record to `output`, keeping key and value; records whose value is "bad" are dead letters. */
function copyTo (output: string): BatchFunction {
  return (_topic, _partition, messages) => ({
    outputs: [{ topic: output, messages: messages.filter((m) => !isBad(m)).map(copy) }],
    deadLetters: messages.filter(isBad).map(copy),
    nextOffset: (BigInt(messages.at(-1)!.offset) + 1n).toString(),
  })
}

interface Pipeline { input: string, output: string, dlq: string, group: string, transactionalId: string }

async function pipeline (t: Teardown, name: string): Promise<Pipeline> {
  const names = { input: uniqueName(`${name}-in`), output: uniqueName(`${name}-out`), dlq: uniqueName(`${name}-dlq`) }
  await createTopics(t, [names.input, names.output, names.dlq], 2)
  return { ...names, group: uniqueName(`${name}-group`), transactionalId: uniqueName(`${name}-txn`) }
}

function startTask (
  t: Teardown, topics: Pipeline, client: KafkaClient, log: FastifyBaseLogger,
  extra: {
    staticMembership?: boolean,
    consumerCloseTimeoutMs?: number,
    batchSize?: number,
    transactionMs?: number,
    batch?: BatchFunction,
  } = {}
): StreamTask {
  const task = new StreamTask(client, {
    name: 'test task',
    inputTopic: topics.input,
    deadLetterTopic: topics.dlq,
    groupId: topics.group,
    transactionalId: topics.transactionalId,
    staticMembership: extra.staticMembership ?? false,
    batchSize: extra.batchSize ?? 100,
    ...(extra.transactionMs === undefined ? {} : { transactionMs: extra.transactionMs }),
    deliveryTimeoutMs: 5_000,
    instanceVariable: 'TEST_INSTANCE_ID',
    ...(extra.consumerCloseTimeoutMs === undefined ? {} : { consumerCloseTimeoutMs: extra.consumerCloseTimeoutMs }),
  }, extra.batch ?? copyTo(topics.output), log, quietObserver)
  t.teardown(() => task.stop())
  return task
}

const records = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({ key: `k${i % 5}`, value: `${prefix}-${i}` }))

/** The values of the output, read_committed, and which of them came more than once. */
async function outputValues (topic: string, count: number): Promise<{ values: string[], duplicates: string[] }> {
  const values = (await readTopic(topic, { count, settleMs: 1_000 })).map((r) => r.value ?? '')
  return { values: [...new Set(values)].sort(), duplicates: values.filter((v, i) => values.indexOf(v) !== i) }
}

const sorted = (items: Array<{ value: string }>) => items.map((r) => r.value).sort()

t.test('a failed transaction is aborted and its batch rewound to the committed offset: each record once', async (t) => {
  const topics = await pipeline(t, 'task-rewind')
  // commits fail twice, after the records of the transaction were written
  const { client } = faultyClient(t, { commitFails: 2 })
  const { log, lines } = capturingLog()
  const task = startTask(t, topics, client, log)
  await task.start()
  const input = records('rewind', 40)
  await writeRecords(topics.input, [...input.slice(0, 20), { key: 'k0', value: 'bad' }, ...input.slice(20)])
  await waitFor('every record to be committed', () => task.counts.written === input.length, 30_000)

  t.equal(task.counts.transactionsAborted, 2, 'two transactions aborted')
  const said = lines.filter((line) => line.msg === 'transaction failed; aborting and rewinding to the committed offset')
  t.equal(said.length, 2, 'and said so')
  t.equal(task.counts.deadLettered, 1, 'the bad record dead-lettered once')
  t.equal(task.problem, undefined, 'ready again once a transaction commits')
  const output = await outputValues(topics.output, input.length)
  t.same(output, { values: sorted(input), duplicates: [] }, 'read_committed: every input once')
  t.same((await readTopic(topics.dlq, { count: 1, settleMs: 500 })).map((r) => r.value), ['bad'])
  const attempts = await readTopic(topics.output, { count: input.length, readCommitted: false, settleMs: 500 })
  t.ok(attempts.length > input.length, `the aborted attempts are in the log, aborted (${attempts.length} records)`)
})

t.test('transactions sized by records and time: batches of both partitions share one transaction; ' +
  'a failed one rewinds every partition it took from', async (t) => {
  const topics = await pipeline(t, 'task-span')
  const { client } = faultyClient(t, { commitFails: 1 })
  const batches: number[] = []
  const copying = copyTo(topics.output)
  const task = startTask(t, topics, client, capturingLog().log, {
    batchSize: 1_000,
    transactionMs: 3_000,
    batch: (topic, partition, messages) => {
      batches.push(partition)
      return copying(topic, partition, messages)
    },
  })
  await task.start()
  const input = records('span', 40)
  await writeRecords(topics.input, input)
  await waitFor('every record to be committed', () => task.counts.written === input.length, 30_000)

  t.equal(task.counts.transactionsAborted, 1, 'the first transaction failed')
  t.ok(new Set(batches).size === 2, 'records of both partitions')
  const transactions = task.counts.transactionsCommitted + task.counts.transactionsAborted
  t.ok(transactions < batches.length, `fewer transactions (${transactions}) than batches (${batches.length})`)
  t.same(await outputValues(topics.output, input.length), { values: sorted(input), duplicates: [] },
    'read_committed: every input once')
})

t.test('fenced by a newer producer with its transactional.id: it steps down, the newer one goes on', async (t) => {
  const topics = await pipeline(t, 'task-fenced')
  const { log, lines } = capturingLog()
  const task = startTask(t, topics, testKafka(), log)
  await task.start()
  const first = records('before', 20)
  await writeRecords(topics.input, first)
  await waitFor('the first records committed', () => task.counts.written === first.length, 30_000)

  // initTransactions of a newer producer with the same transactional.id fences the task's producer
  const zombie = testKafka().producer({ 'transactional.id': topics.transactionalId, 'enable.idempotence': true })
  await zombie.connect()
  await zombie.disconnect()
  const second = records('after', 20)
  await writeRecords(topics.input, second)
  await waitFor('the task to step down', () => task.counts.timesFenced === 1 && task.assignment === undefined, 30_000)
  t.match(task.problem,
    /^fenced by another instance with transactional.id \S+; stepped down \(restart this one once TEST_INSTANCE_ID is/)
  t.ok(lines.some((line) => /stepping down \(is TEST_INSTANCE_ID unique/.test(String(line.msg))), 'says why in the log')
  const aborted = task.counts.transactionsAborted

  const successor = startTask(t, topics, testKafka(), capturingLog().log)
  await successor.start()
  await waitFor('the successor to write the rest', () => successor.counts.written === second.length, 30_000)
  t.equal(task.counts.transactionsAborted, aborted, 'the stepped-down task tried no more transactions')
  t.same(await outputValues(topics.output, first.length + second.length),
    { values: sorted([...first, ...second]), duplicates: [] })
})

t.test('a consumer that does not close in time is left behind: stop() returns after the close timeout', async (t) => {
  const topics = await pipeline(t, 'task-close')
  // a close that hangs, as librdkafka's can in a rebalance
  const { client } = faultyClient(t, { consumerCloseHangs: true })
  const { log, lines } = capturingLog()
  const task = startTask(t, topics, client, log, { consumerCloseTimeoutMs: 500 })
  await task.start()
  await writeRecords(topics.input, records('close', 5))
  await waitFor('the records committed', () => task.counts.written === 5, 30_000)
  const hung = new Promise((resolve) => setTimeout(resolve, 15_000, 'hung'))
  const stopped = await Promise.race([task.stop().then(() => 'stopped'), hung])
  t.equal(stopped, 'stopped', 'stop() returned although the consumer never closed')
  const leftBehind = 'the consumer did not close in time (a rebalance during close?); leaving it behind'
  t.ok(lines.some((line) => line.msg === leftBehind && line.timeoutMs === 500), 'and said so')
})

t.test('a fatal consumer error (a static member fenced by a twin): not ready, counted, then new clients', async (t) => {
  const topics = await pipeline(t, 'task-fatal')
  const { log, lines } = capturingLog()
  const task = startTask(t, topics, testKafka(), log, { staticMembership: true })
  await task.start()
  const first = records('first', 10)
  await writeRecords(topics.input, first)
  await waitFor('the first records committed', () => task.counts.written === first.length, 30_000)

  // another consumer joins as the same static member: the broker fences the task's consumer
  const twin = testKafka().consumer({
    'group.id': topics.group, 'group.instance.id': topics.transactionalId, 'enable.auto.commit': false,
  })
  await twin.connect()
  t.teardown(() => twin.disconnect().catch(() => {}))
  await twin.subscribe({ topics: [topics.input] })
  await twin.run({ eachMessage: async () => {} })
  const problem = await waitFor('the task to notice', () => task.problem, 30_000, 10)
  t.match(problem, /^the consumer failed fatally \(.*\); starting over with new clients/)
  t.ok(task.counts.consumerFatalErrors >= 1, 'counted')
  const said = /fatal consumer error; starting over with new clients \(is TEST_INSTANCE_ID unique/
  t.ok(lines.some((line) => said.test(String(line.msg))), 'and said so')
  await twin.disconnect()

  await waitFor('the task to be ready again', () => task.problem === undefined && task.assignment?.length === 2, 60_000)
  const second = records('second', 10)
  await writeRecords(topics.input, second)
  await waitFor('the new records committed', () => task.counts.written === first.length + second.length, 30_000)
  t.same(await outputValues(topics.output, first.length + second.length),
    { values: sorted([...first, ...second]), duplicates: [] })
})

/**
 * A stateful role for the tests: the sum of each partition's values, written to `sums` (its changelog,
 * the sum keyed by partition) with a copy of every record to `copies`, several outputs per commit.
 * Restoring reads the last committed sum of each partition back from `sums`.
 */
function summingState (topics: { copies: string, sums: string }) {
  const sums = new Map<number, number>()
  const pending = new Map<number, Array<ReturnType<typeof copy>>>()
  const calls = { restored: [] as number[][], released: [] as number[][], idle: [] as number[] }
  const state: PartitionState = {
    async restore (partitions) {
      calls.restored.push([...partitions].sort())
      const records = await readTopic(topics.sums, { count: 0, settleMs: 300 })
      for (const partition of partitions) {
        const last = records.filter((r) => r.partition === partition).at(-1)
        sums.set(partition, Number(last?.value ?? 0))
        pending.set(partition, [])
      }
    },
    release (partitions) {
      calls.released.push(partitions)
      for (const partition of partitions) { sums.delete(partition); pending.delete(partition) }
    },
    process (partition, messages) {
      for (const message of messages) {
        sums.set(partition, (sums.get(partition) ?? 0) + Number(message.value?.toString()))
        pending.get(partition)?.push(copy(message))
      }
    },
    outputs (partition, idleMs) {
      calls.idle.push(idleMs)
      const copies = pending.get(partition) ?? []
      if (copies.length === 0) return []
      const sum = { key: `p${partition}`, value: String(sums.get(partition)), partition }
      return [{ topic: topics.copies, messages: copies }, { topic: topics.sums, messages: [sum] }]
    },
    committed (partitions) {
      for (const partition of partitions) pending.set(partition, [])
    },
  }
  return { state, calls }
}

interface StatefulPipeline extends Pipeline { copies: string, sums: string }

async function statefulPipeline (t: Teardown, name: string): Promise<StatefulPipeline> {
  const topics = await pipeline(t, name)
  const copies = uniqueName(`${name}-copies`)
  const sums = uniqueName(`${name}-sums`)
  await createTopics(t, [copies, sums], 2)
  return { ...topics, copies, sums }
}

function startStatefulTask (
  t: Teardown, topics: StatefulPipeline, client: KafkaClient, state: PartitionState,
  extra: { recovery?: 'step down' | 'recover', observer?: StreamTaskObserver, batchSize?: number } = {}
): StreamTask {
  const task = new StreamTask(client, {
    name: 'stateful test task',
    inputTopic: topics.input,
    deadLetterTopic: topics.dlq,
    groupId: topics.group,
    transactionalId: topics.transactionalId,
    staticMembership: false,
    batchSize: extra.batchSize ?? 100,
    instanceVariable: 'TEST_INSTANCE_ID',
    commitIntervalMs: 100,
    ...(extra.recovery === undefined ? {} : { recovery: extra.recovery }),
  }, state, capturingLog().log, extra.observer ?? quietObserver)
  t.teardown(() => task.stop())
  return task
}

const numbers = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ key: `k${(from + i) % 5}`, value: String(from + i) }))
const total = (values: Array<{ value: string }>) => values.reduce((sum, v) => sum + Number(v.value), 0)

/** The last committed sum of each partition, added up. */
async function committedSum (topic: string): Promise<number> {
  const records = await readTopic(topic, { count: 0, settleMs: 500 })
  const last = (partition: number) => Number(records.filter((r) => r.partition === partition).at(-1)?.value ?? 0)
  return last(0) + last(1)
}

t.test('stateful task: restore hook on assignment, several outputs per commit, a failed commit rewinds', async (t) => {
  const topics = await statefulPipeline(t, 'task-state')
  const { client } = faultyClient(t, { commitFails: 1 })
  const { state, calls } = summingState(topics)
  const task = startStatefulTask(t, topics, client, state)
  await task.start()
  await waitFor('the partitions assigned and restored', () => task.problem === undefined, 30_000)
  t.same(calls.restored, [[0, 1]], 'the restore hook ran for the assigned partitions before any batch')
  t.same(task.ownedPartitions, [0, 1])

  const input = numbers(1, 40)
  await writeRecords(topics.input, input)
  const rewound = () => task.counts.transactionsCommitted > 0 && task.counts.transactionsAborted === 1
  await waitFor('a commit to fail and a later one to land', () => rewound() && calls.restored.length >= 2, 30_000)
  t.same(calls.restored[1], [0, 1], 'the failed commit restored the state again (rewound)')
  const copies = await outputValues(topics.copies, input.length)
  t.same(copies, { values: sorted(input), duplicates: [] }, 'every record copied once, read_committed')
  await waitFor('the sums to add up', async () => await committedSum(topics.sums) === total(input), 30_000)
  t.ok(calls.idle.every((ms) => ms >= 0), 'outputs() is told how long each partition has been idle')
})

t.test('stateful task under a backlog: commit cycles run while batches keep coming, not only after', async (t) => {
  const topics = await statefulPipeline(t, 'task-backlog')
  const { state } = summingState(topics)
  const backlog = numbers(1, 1_000)
  await writeRecords(topics.input, backlog)
  const commitsSeen: number[] = []
  const counts = { committed: 0 }
  const busy: PartitionState = {
    ...state,
    process (partition, messages) {
      // each batch costs CPU time, as a real role's does
      const until = performance.now() + 20
      while (performance.now() < until);
      commitsSeen.push(counts.committed)
      state.process(partition, messages)
    },
  }
  const observer = { ...quietObserver, committed: () => { counts.committed += 1 } }
  const task = startStatefulTask(t, topics, testKafka(), busy, { batchSize: 20, observer })
  await task.start()
  await waitFor('the backlog committed', async () => await committedSum(topics.sums) === total(backlog), 60_000)
  const batches = commitsSeen.length
  t.ok(batches >= 50, `the backlog came in batches of at most 20 (${batches})`)
  // every 100 ms of busy batches a commit cycle was due
  t.ok(commitsSeen.at(-1)! >= 3, `commit cycles ran during the backlog (${commitsSeen.at(-1)} before its last batch)`)
})

t.test('stateful task: a successor restores the state from the changelog and goes on from there', async (t) => {
  const topics = await statefulPipeline(t, 'task-handover')
  const first = summingState(topics)
  const task = startStatefulTask(t, topics, testKafka(), first.state)
  await task.start()
  const before = numbers(1, 20)
  await writeRecords(topics.input, before)
  await waitFor('the first sums committed', async () => await committedSum(topics.sums) === total(before), 30_000)
  await task.stop()
  t.same(first.calls.released.flat().sort(), [0, 1], 'leaving the group released the state of both partitions')

  const second = summingState(topics)
  const successor = startStatefulTask(t, topics, testKafka(), second.state)
  await successor.start()
  const after = numbers(21, 20)
  await writeRecords(topics.input, after)
  await waitFor('the sums to go on from the restored ones', async () =>
    await committedSum(topics.sums) === total([...before, ...after]), 30_000)
  t.same(await outputValues(topics.copies, before.length + after.length),
    { values: sorted([...before, ...after]), duplicates: [] }, 'nothing processed twice across the hand-over')
})

t.test('policy "recover": fenced, it stands down, then takes its place again once nobody uses its id', async (t) => {
  const topics = await statefulPipeline(t, 'task-recover')
  const seen: string[] = []
  const observer: StreamTaskObserver = {
    ...quietObserver,
    stoodDown: (reason) => { seen.push(`stood down: ${reason}`) },
    recovered: () => { seen.push('recovered') },
  }
  const { state } = summingState(topics)
  const task = startStatefulTask(t, topics, testKafka(), state, { recovery: 'recover', observer })
  await task.start()
  const before = numbers(1, 10)
  await writeRecords(topics.input, before)
  await waitFor('the first sums committed', async () => await committedSum(topics.sums) === total(before), 30_000)

  // a producer with the task's transactional.id fences it, and is gone: no group member uses the id
  const zombie = testKafka().producer({ 'transactional.id': topics.transactionalId, 'enable.idempotence': true })
  await zombie.connect()
  await zombie.disconnect()
  const after = numbers(11, 10)
  await writeRecords(topics.input, after)
  const stoodDown = /^fenced by another instance with transactional.id \S+; stepped down until no other member of group/
  await waitFor('the task to stand down', () => stoodDown.test(task.problem ?? ''), 30_000)
  t.match(task.problem, /TEST_INSTANCE_ID must be unique per replica/)
  await waitFor('the task to recover', () => seen.includes('recovered') && task.problem === undefined, 60_000)
  t.same(seen, ['stood down: fenced', 'recovered'])
  const all = total([...before, ...after])
  await waitFor('the rest committed', async () => await committedSum(topics.sums) === all, 30_000)
  t.same(await outputValues(topics.copies, before.length + after.length),
    { values: sorted([...before, ...after]), duplicates: [] }, 'each record once across the stand-down')
})
