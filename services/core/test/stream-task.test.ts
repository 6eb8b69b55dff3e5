import { Writable } from 'node:stream'
import t from 'tap'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import {
  type BatchFunction, type KafkaClient, type KafkaMessage, type StreamTaskObserver, StreamTask,
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
  extra: { staticMembership?: boolean, consumerCloseTimeoutMs?: number } = {},
): StreamTask {
  const task = new StreamTask(client, {
    name: 'test task',
    inputTopic: topics.input,
    deadLetterTopic: topics.dlq,
    groupId: topics.group,
    transactionalId: topics.transactionalId,
    staticMembership: extra.staticMembership ?? false,
    batchSize: 100,
    deliveryTimeoutMs: 5_000,
    instanceVariable: 'TEST_INSTANCE_ID',
    ...(extra.consumerCloseTimeoutMs === undefined ? {} : { consumerCloseTimeoutMs: extra.consumerCloseTimeoutMs }),
  }, copyTo(topics.output), log, quietObserver)
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
