import type { FastifyInstance } from 'fastify'
import { createService, loadConfig } from '@pagestream/core'
import { role } from '../src/app.js'
import {
  TEST_BROKERS, type Teardown, createTopics, deleteTopics, readTopic, uniqueName, waitFor,
} from '@pagestream/test-kit'

export interface AnalyticsTopics {
  input: string, output: string, group: string, changelog: string, late: string, dlq: string, repartition: string
}

/** Fresh topic and group names for one test; the input is created with the given partitions. */
export async function analyticsTopics (t: Teardown, prefix: string, partitions = 1): Promise<AnalyticsTopics> {
  const input = uniqueName(`${prefix}-in`)
  const output = uniqueName(`${prefix}-out`)
  const group = uniqueName(`${prefix}-group`)
  const names = {
    input,
    output,
    group,
    changelog: `${group}-windows-changelog`,
    late: `${input}.late`,
    dlq: `${input}.dlq`,
    repartition: `${group}-repartition`,
  }
  await createTopics(t, [input, output], partitions)
  t.teardown(() => deleteTopics([names.changelog, names.late, names.dlq, names.repartition]))
  return names
}

export function topicEnv (topics: AnalyticsTopics): Record<string, string> {
  return {
    ANALYTICS_INPUT_TOPIC: topics.input,
    ANALYTICS_OUTPUT_TOPIC: topics.output,
    ANALYTICS_GROUP_ID: topics.group,
  }
}

/** The role's settings for these topics with 1 s windows closed on time (no grace), plus `extra`. */
export function oneSecondWindows (topics: AnalyticsTopics, extra: Record<string, string> = {}): Record<string, string> {
  return { ...topicEnv(topics), WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '0', ...extra }
}

/** The analytics role in this process, exactly as production builds it, ready to serve. */
export async function startAnalytics (t: Teardown, env: Record<string, string>): Promise<FastifyInstance> {
  const config = loadConfig(
    role.config, { KAFKA_BROKERS: TEST_BROKERS, HTTP_PORT: '0', LOG_LEVEL: 'warn', COMMIT_INTERVAL_MS: '100', ...env }
  )
  const fastify = await createService(role, config, { logger: process.env.ANALYTICS_TEST_LOGS === '1' })
  t.teardown(() => fastify.close())
  await waitFor(
    'analytics to be ready', async () => (await fastify.inject('/health/ready')).statusCode === 200, 30_000, 100
  )
  return fastify
}

export interface PageEventSpec { page: string, user: string, at: number, duration: number }

export const STEADY_T0 = Date.parse('2024-01-01T00:00:00.000Z')

/**
 * `count` events 10 ms apart from the `from`-th on, round-robin over `pages`: 100 per 1 s window, so rounds of 300
 * fill whole windows.
 */
export function steadyEvents (from: number, count: number, pages: readonly string[]): PageEventSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    page: pages[(from + i) % pages.length]!, user: `U${(from + i) % 7}`, at: STEADY_T0 + (from + i) * 10, duration: 1,
  }))
}

export function eventMessage (event: PageEventSpec): { key: string, value: string } {
  return {
    key: event.page,
    value: JSON.stringify({
      name: event.page, user: event.user, date: new Date(event.at).toISOString(), duration: event.duration,
    }),
  }
}

export interface FinalRow {
  page: string
  start: number
  end: number
  count: number
  durationSum: number
  distinctUsers: number
  longViews: number
}

/** Reads R4 until `finals` final records arrived (and a second more), and returns every record parsed. */
export async function readWindows (topic: string, finals: number, timeoutMs = 30_000): Promise<Array<FinalRow & {
  final: boolean,
}>> {
  const deadline = Date.now() + timeoutMs
  let records: Array<FinalRow & { final: boolean }> = []
  for (;;) {
    const raw = await readTopic(topic, { count: 1, timeoutMs: 5_000, settleMs: 1_000 })
    records = raw.map((r) => {
      const v = JSON.parse(r.value ?? 'null') as {
        page: string,
        windowStart: string,
        windowEnd: string,
        count: number,
        durationSum: number,
        distinctUsers: number,
        longViews: number,
        final: boolean,
      }
      return {
        page: v.page,
        start: Date.parse(v.windowStart),
        end: Date.parse(v.windowEnd),
        count: v.count,
        durationSum: v.durationSum,
        distinctUsers: v.distinctUsers,
        longViews: v.longViews,
        final: v.final,
      }
    })
    if (records.filter((r) => r.final).length >= finals || Date.now() > deadline) return records
  }
}

export function finalTable (records: Array<FinalRow & { final: boolean }>): FinalRow[] {
  return records.filter((r) => r.final).map(({ final: _final, ...row }) => row)
    .sort((a, b) => a.page.localeCompare(b.page) || a.start - b.start)
}

/** The finals of tumbling windows of `sizeMs`, counted from the events with nothing of the role's code. */
export function expectedFinals (events: PageEventSpec[], sizeMs: number): FinalRow[] {
  const windows = new Map<string, FinalRow & { users: Set<string> }>()
  for (const event of events) {
    const start = Math.floor(event.at / sizeMs) * sizeMs
    const key = `${event.page}@${start}`
    const empty = { count: 0, durationSum: 0, distinctUsers: 0, longViews: 0, users: new Set<string>() }
    const row = windows.get(key) ?? { page: event.page, start, end: start + sizeMs, ...empty }
    row.count += 1
    row.durationSum += event.duration
    row.users.add(event.user)
    row.distinctUsers = row.users.size
    if (event.duration > 100) row.longViews += 1
    windows.set(key, row)
  }
  return [...windows.values()].map(({ users: _users, ...row }) => row)
    .sort((a, b) => a.page.localeCompare(b.page) || a.start - b.start)
}

/** A replica's readiness: the HTTP status and what its window processor's check says. */
export async function processorReadiness (url: string): Promise<{ status: number, detail: string }> {
  const response = await fetch(`${url}/health/ready`)
  const body = await response.json() as { checks: { processor?: { detail?: string } } }
  return { status: response.status, detail: body.checks.processor?.detail ?? '' }
}

/** Events per tumbling window of `sizeMs`, keyed `<page>@<window start>`, counted with nothing of the role's code. */
export function windowCounts (events: PageEventSpec[], sizeMs: number): Map<string, number> {
  const counts = new Map<string, number>()
  for (const event of events) {
    const key = `${event.page}@${Math.floor(event.at / sizeMs) * sizeMs}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}
