// 10k poison records among good ones on R1 and R2: every reading role dead-letters each poison record with its
// reason and source, the good events still get through, and no role stops being ready.
import { setTimeout as sleep } from 'node:timers/promises'
import { startRole, waitFor } from '@pagestream/test-kit'
import { check } from '../lib/report.mjs'
import { drillTopics, nthEvent, pageEventRecord, roleEnv, writeEvents } from '../lib/pipeline.mjs'
import { follow } from '../lib/topics.mjs'

const POISON = 10_000
const GOOD_EVERY = 10

/** Ways a record can fail the PageEvent contract; each poison record is one of them. */
const KINDS = [
  () => 'not json at all',
  () => '{"name":"blog","user":"U1"',
  () => JSON.stringify({ user: 'U1', date: '2024-01-01T00:00:00Z', duration: 1 }),
  () => JSON.stringify({ name: 'blog', user: 'U1', date: '2024-01-01T00:00:00Z', duration: -5 }),
  () => JSON.stringify({ name: 'blog', user: 'U1', date: 'yesterday', duration: 5 }),
  () => JSON.stringify({ name: 'x'.repeat(300), user: 'U1', date: '2024-01-01T00:00:00Z', duration: 5 }),
  () => JSON.stringify({ name: 'blog', user: 'U1', date: '2023-02-30T00:00:00Z', duration: 5 }),
  () => JSON.stringify([1, 2, 3]),
  () => Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
  () => null,
]

/** Record i of the stream: a good event every GOOD_EVERY-th, poison otherwise, each tagged with its index. */
function nthRecord (i) {
  if (i % GOOD_EVERY === 0) return pageEventRecord(nthEvent(i))
  return { key: `poison-${i}`, value: KINDS[i % KINDS.length](), headers: { 'chaos-record': String(i) } }
}

export const drill = {
  title: `${POISON.toLocaleString('en-US')} poison records on R1 and R2`,
  async run ({ t, progress }) {
    const topics = await drillTopics(t, 'chaos-poison')
    const env = roleEnv(topics)
    const total = Math.ceil(POISON * GOOD_EVERY / (GOOD_EVERY - 1))
    const good = Math.ceil(total / GOOD_EVERY)
    const roles = {}
    for (const name of ['consumer', 'transformer', 'analytics']) {
      roles[name] = await startRole(t, name, env[name], { readyTimeoutMs: 120_000 })
    }

    // readiness sampled all through the drill: a poison record must never take a role out
    const notReady = { consumer: 0, transformer: 0, analytics: 0 }
    let samples = 0
    const done = new AbortController()
    const watch = (async () => {
      while (!done.signal.aborted) {
        samples++
        await Promise.all(Object.entries(roles).map(async ([name, role]) => {
          const response = await fetch(`${role.url}/health/ready`).catch(() => undefined)
          if (response?.status !== 200) notReady[name]++
          await response?.arrayBuffer()
        }))
        await sleep(250)
      }
    })()

    const dead = []
    const readers = await Promise.all([topics.r1DeadLetters, topics.r2DeadLetters].map((topic) =>
      follow(topic, ({ headers }) => dead.push(headers))))
    t.teardown(() => Promise.all(readers.map((reader) => reader.stop())))
    let transformed = 0
    const r3 = await follow(topics.r3, () => { transformed++ })
    t.teardown(() => r3.stop())

    await writeEvents([topics.r1, topics.r2], total, nthRecord)
    const poison = total - good
    const report = setInterval(() => progress(`${dead.length.toLocaleString('en-US')}/${(3 * poison)
      .toLocaleString('en-US')} dead letters, ${transformed}/${good} good events transformed`), 2_000)
    try {
      await waitFor('every poison record dead-lettered by each role, every good event transformed',
        () => dead.length >= 3 * poison && transformed >= good, 600_000, 200)
      await sleep(2_000)
    } finally {
      clearInterval(report)
      done.abort()
      await watch
    }

    const byRole = { consumer: new Set(), transformer: new Set(), analytics: new Set() }
    let withoutReason = 0
    let notPoison = 0
    const reasons = new Set()
    for (const headers of dead) {
      const index = Number(headers['chaos-record'])
      if (!(index % GOOD_EVERY !== 0 && index < total)) notPoison++
      byRole[headers['dlq-role']]?.add(index)
      const reason = headers['dlq-error'] ?? ''
      if (reason === '' || headers['dlq-source-offset'] === undefined || headers['dlq-source-topic'] === undefined) {
        withoutReason++
      }
      reasons.add(reason.replace(/\d+/g, 'N').slice(0, 60))
    }
    const stillReady = await Promise.all(Object.values(roles).map(async (role) =>
      (await fetch(`${role.url}/health/ready`)).status === 200))
    return [
      check('poison records written to R1 and to R2', poison, { op: '>=', want: POISON }),
      check('dead-lettered by consumer', byRole.consumer.size, { op: '=', want: poison }),
      check('dead-lettered by transformer', byRole.transformer.size, { op: '=', want: poison }),
      check('dead-lettered by analytics', byRole.analytics.size, { op: '=', want: poison }),
      check('dead letters in all', dead.length, { op: '=', want: 3 * poison }),
      check('dead letters without reason or source', withoutReason, { op: '=', want: 0 }),
      check('dead letters of a good record', notPoison, { op: '=', want: 0 }),
      check('distinct reasons given', reasons.size),
      check('good events transformed meanwhile', transformed, { op: '=', want: good }),
      check('readiness probes not 200 (of 3 roles)', Object.values(notReady).reduce((a, b) => a + b, 0),
        { op: '=', want: 0 }),
      check('readiness samples', samples),
      check('roles ready at the end', stillReady.filter(Boolean).length, { op: '=', want: 3 }),
    ]
  },
}
