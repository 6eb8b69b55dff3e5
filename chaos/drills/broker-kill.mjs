// The broker SIGKILLed and restarted while HTTP clients publish to the producer role: every acknowledged event
// must be in the topic exactly once (by its event id); refusals are 503s; recovery is the first 2xx after restart.
import { setTimeout as sleep } from 'node:timers/promises'
import { readTopic, startRole, uniqueName } from '@pagestream/test-kit'
import { check } from '../lib/report.mjs'

const EVENTS = 100_000
const PER_REQUEST = 10
const CLIENTS = 16
const KILL_AT = 0.3
const DOWN_MS = 3_000

export const drill = {
  title: `broker SIGKILL and restart during ${EVENTS.toLocaleString('en-US')} publishes over HTTP`,
  async run ({ t, broker, progress }) {
    const topic = uniqueName('chaos-broker-r1')
    const producer = await startRole(t, 'producer', {
      PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '10000000', LOG_LEVEL: 'warn',
    })
    const url = `${producer.url}/events/${topic}`
    const acknowledged = []
    const statuses = new Map()
    let sent = 0
    let failures = 0
    let withoutRetryAfter = 0
    let killedAt
    let restartedAt
    let firstSuccessAfterRestart
    const body = (n) => JSON.stringify(Array.from({ length: PER_REQUEST }, (_, i) => ({
      name: `page-${(n + i) % 50}`, user: 'U1', date: Date.now(), duration: n + i,
    })))

    const client = async () => {
      while (acknowledged.length < EVENTS) {
        const n = sent
        sent += PER_REQUEST
        const response = await fetch(url, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: body(n),
        }).catch(() => undefined)
        const status = response?.status ?? 'no answer'
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
        if (response?.status === 200) {
          const { results } = await response.json()
          acknowledged.push(...results.map((r) => r.eventId))
          if (restartedAt !== undefined && firstSuccessAfterRestart === undefined) firstSuccessAfterRestart = Date.now()
        } else {
          if (response?.status === 503 && response.headers.get('retry-after') === null) withoutRetryAfter++
          if (response !== undefined) await response.arrayBuffer()
          failures++
          // as a client told Retry-After would, but sooner: the drill wants to see the recovery
          await sleep(100)
        }
      }
    }

    const fault = (async () => {
      while (acknowledged.length < EVENTS * KILL_AT) await sleep(20)
      await broker.kill()
      killedAt = Date.now()
      progress(`broker SIGKILLed after ${acknowledged.length} acknowledged events; down for ${DOWN_MS} ms`)
      await sleep(DOWN_MS)
      const restarting = Date.now()
      await broker.up()
      restartedAt = Date.now()
      progress(`broker back after ${restartedAt - restarting} ms of start-up`)
      return restartedAt - restarting
    })()
    const report = setInterval(() => progress(
      `${acknowledged.length.toLocaleString('en-US')}/${EVENTS.toLocaleString('en-US')} acknowledged, ` +
      `${failures} refused${killedAt === undefined ? '' : restartedAt === undefined ? ' (broker down)' : ''}`
    ), 1_000)
    const began = Date.now()
    try {
      await Promise.all([...Array.from({ length: CLIENTS }, client), fault])
    } finally {
      clearInterval(report)
    }
    const publishSeconds = (Date.now() - began) / 1000
    const startUpMs = await fault
    await producer.stop('SIGTERM')

    progress(`reading ${topic} back`)
    const records = await readTopic(topic, { count: acknowledged.length, timeoutMs: 180_000, settleMs: 3_000 })
    const copies = new Map()
    for (const record of records) {
      const id = record.headers['event-id']
      copies.set(id, (copies.get(id) ?? 0) + 1)
    }
    const lost = acknowledged.filter((id) => !copies.has(id)).length
    const duplicated = [...copies.values()].filter((n) => n > 1).length
    const ackedSet = new Set(acknowledged)
    const unacknowledgedWritten = [...copies.keys()].filter((id) => !ackedSet.has(id)).length
    const count = (status) => statuses.get(status) ?? 0
    const fiveHundreds = [...statuses].filter(([s]) => typeof s === 'number' && s >= 500 && s !== 503)
      .reduce((sum, [, n]) => sum + n, 0)
    return [
      check('events acknowledged (2xx)', acknowledged.length, { op: '>=', want: EVENTS }),
      check('acknowledged events lost', lost, { op: '=', want: 0 }),
      check('events in the topic twice or more', duplicated, { op: '=', want: 0 }),
      check('503 answers', count(503)),
      check('503 answers without Retry-After', withoutRetryAfter, { op: '=', want: 0 }),
      check('5xx other than 503', fiveHundreds, { op: '=', want: 0 }),
      check('requests without an answer', count('no answer'), { op: '=', want: 0 }),
      check('refused events written anyway (a 503 warns of it)', unacknowledgedWritten),
      check('broker start-up after the kill, ms', startUpMs),
      check('recovery: broker ready -> first 2xx, ms', firstSuccessAfterRestart - restartedAt,
        { op: '<=', want: 15_000 }),
      check('kill -> first 2xx, ms', firstSuccessAfterRestart - killedAt),
      check('publishing took, s', Number(publishSeconds.toFixed(1))),
    ]
  },
}
