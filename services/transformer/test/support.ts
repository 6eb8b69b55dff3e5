import type { PageEvent } from '@pagestream/core'
import { setTimeout as sleep } from 'node:timers/promises'
import ckjs, { type KafkaJS } from '@confluentinc/kafka-javascript'
import {
  type ReadRecord, type RunningRole, type Teardown, createTopics, deleteTopics, startRole, testKafka, uniqueName,
} from '@pagestream/test-kit'

export interface Pipeline { input: string, output: string, deadLetters: string, group: string }

/** Fresh topics (input with 3 partitions, as in production) and a fresh consumer group. */
export async function pipeline (t: Teardown, name: string): Promise<Pipeline> {
  const input = uniqueName(`${name}-in`)
  const output = uniqueName(`${name}-out`)
  await createTopics(t, [input], 3)
  // the role creates these two at start-up; they are ours to delete
  t.teardown(() => deleteTopics([output, `${input}.dlq`]))
  return { input, output, deadLetters: `${input}.dlq`, group: uniqueName(`${name}-group`) }
}

export function startTransformer (
  t: Teardown, topics: Pipeline, instance: string, env: Record<string, string> = {}
): Promise<RunningRole> {
  return startRole(t, 'transformer', {
    TRANSFORMER_INPUT_TOPIC: topics.input,
    TRANSFORMER_OUTPUT_TOPIC: topics.output,
    TRANSFORMER_GROUP_ID: topics.group,
    TRANSFORMER_INSTANCE_ID: instance,
    LOG_LEVEL: 'warn',
    ...env,
  })
}

export interface TransformerStatus {
  transactionalId: string
  groupInstanceId: string | null
  assignment: number[] | null
  counts: {
    transformed: number,
    deadLettered: number,
    transactionsCommitted: number,
    transactionsAborted: number,
    producerReplacements: number,
    timesFenced: number,
    consumerFatalErrors: number
  }
  lastError: string | null
}

export async function status (role: RunningRole): Promise<TransformerStatus> {
  const response = await fetch(`${role.url}/status`)
  if (response.status !== 200) throw new Error(`/status answered ${response.status}`)
  return await response.json() as TransformerStatus
}

const PAGES = ['blog', 'shop', 'home', 'straße']

export interface InputEvent { id: string, event: PageEvent }

/** `count` distinct events whose ids say where they belong; pages repeat so keys share partitions. */
export function inputEvents (count: number, prefix: string): InputEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    event: {
      name: PAGES[i % PAGES.length]!,
      user: `u${i % 7}`,
      date: new Date(1_700_000_000_000 + i).toISOString(),
      duration: i,
    },
  }))
}

export function asRecords (events: InputEvent[]) {
  return events.map(({ id, event }) => ({
    key: event.name,
    value: JSON.stringify(event),
    headers: { 'content-type': 'application/json', 'event-id': id },
  }))
}

export function expectedOutput (event: PageEvent): PageEvent {
  return {
    name: event.name.toUpperCase(), user: event.user.toUpperCase(), date: event.date, duration: event.duration * 2,
  }
}

/**
 * Compares what the output topic holds with the inputs, one by one: every input exactly once,
 * transformed, keyed by its new name; no duplicates, nothing missing, nothing foreign.
 */
export function exactlyOnceReport (inputs: InputEvent[], outputs: ReadRecord[]) {
  const expected = new Map(inputs.map(({ id, event }) => [id, expectedOutput(event)]))
  const seen = new Map<string, number>()
  const wrong: string[] = []
  for (const record of outputs) {
    const id = record.headers['event-id'] ?? '(no id)'
    seen.set(id, (seen.get(id) ?? 0) + 1)
    const want = expected.get(id)
    if (want === undefined) { wrong.push(`${id}: not an input`); continue }
    if (record.key !== want.name) wrong.push(`${id}: key ${record.key}`)
    const contentType = record.headers['content-type']
    if (contentType !== 'application/json') wrong.push(`${id}: content-type ${contentType}`)
    if (record.value !== JSON.stringify(want)) wrong.push(`${id}: value ${record.value}`)
  }
  return {
    count: outputs.length,
    duplicates: [...seen].filter(([, n]) => n > 1).map(([id]) => id),
    missing: inputs.map(({ id }) => id).filter((id) => !seen.has(id)),
    wrong,
  }
}

/**
 * Writes records as a steady stream with an independent producer (not the code under test):
 * `chunk` records every `everyMs`, so that the transformer is busy while the test kills it.
 */
export async function writeSteadily (
  topic: string, records: ReturnType<typeof asRecords>, options: { chunk: number, everyMs: number }
): Promise<{ ms: number }> {
  const producer = testKafka().producer({ 'linger.ms': 5, 'enable.idempotence': true })
  await producer.connect()
  const started = Date.now()
  try {
    for (let i = 0; i < records.length; i += options.chunk) {
      const next = started + (i / options.chunk + 1) * options.everyMs
      await producer.send({ topic, messages: records.slice(i, i + options.chunk) })
      await sleep(Math.max(0, next - Date.now()))
    }
    return { ms: Date.now() - started }
  } finally {
    await producer.disconnect()
  }
}

const { IsolationLevel } = ckjs.KafkaJS

/**
 * Whether a transaction with records already written is open on the topic now: its last stable
 * offset (what read_committed readers may see) lags behind the high watermark on some partition.
 */
export async function openTransactionOn (admin: KafkaJS.Admin, topic: string): Promise<boolean> {
  const [stable, written] = await Promise.all([
    admin.fetchTopicOffsets(topic, { isolationLevel: IsolationLevel.READ_COMMITTED }),
    admin.fetchTopicOffsets(topic, { isolationLevel: IsolationLevel.READ_UNCOMMITTED }),
  ])
  return stable.some((partition) => {
    const high = written.find((p) => p.partition === partition.partition)?.high
    return high !== undefined && BigInt(partition.high) < BigInt(high)
  })
}
