import { randomUUID } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler'

const ISO_8601 = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2})$'
const LATEST_EPOCH_MS = 8_640_000_000_000_000

const PageName = Type.String({ minLength: 1, maxLength: 256, description: 'page name, 1 to 256 characters' })
const UserName = Type.String({ minLength: 1, maxLength: 256, description: 'user name, 1 to 256 characters' })
const Duration = Type.Integer({
  minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a non-negative integer of milliseconds',
})

/** The lab's PageEvent as it travels on the topics: `date` is always ISO 8601 in UTC. */
export const PageEventSchema = Type.Object({
  name: PageName,
  user: UserName,
  date: Type.String({ pattern: ISO_8601, description: 'an ISO 8601 date-time' }),
  duration: Duration,
}, { description: 'A page view: who saw which page, when, and for how long' })
export type PageEvent = Static<typeof PageEventSchema>

/** What clients may send: `date` as ISO 8601 or as epoch milliseconds (what Jackson writes for java.util.Date). */
export const PageEventInputSchema = Type.Object({
  name: PageName,
  user: UserName,
  date: Type.Union([
    Type.String({ pattern: ISO_8601 }),
    Type.Integer({ minimum: 0, maximum: LATEST_EPOCH_MS }),
  ], { description: 'an ISO 8601 date-time or epoch milliseconds' }),
  duration: Duration,
})
export type PageEventInput = Static<typeof PageEventInputSchema>

const inputCheck = TypeCompiler.Compile(PageEventInputSchema)
const eventCheck = TypeCompiler.Compile(PageEventSchema)
const LONE_SURROGATE = /\p{Cs}/u
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export class InvalidPageEventError extends Error {
  constructor (readonly field: string, readonly reason: string) {
    super(field === '' ? reason : `${field}: ${reason}`)
    this.name = 'InvalidPageEventError'
  }
}

function describe (error: ValueError): InvalidPageEventError {
  const field = error.path.replace(/^\//, '').replaceAll('/', '.')
  const expected = error.schema.description
  const got = error.value === undefined ? 'missing' : `got ${JSON.stringify(error.value)}`
  if (error.value === undefined) return new InvalidPageEventError(field, `is required (${expected ?? error.message})`)
  return new InvalidPageEventError(field, `must be ${expected ?? error.message.toLowerCase()} (${got})`)
}

/**
 * Validates a PageEvent from any source and normalises `date` to ISO 8601 UTC.
 * Unknown properties are dropped (tolerant reader), so a newer writer does not break us.
 */
export function parsePageEvent (input: unknown): PageEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidPageEventError('', 'a PageEvent must be a JSON object')
  }
  if (!inputCheck.Check(input)) {
    const first = inputCheck.Errors(input).First()
    throw first === undefined ? new InvalidPageEventError('', 'not a PageEvent') : describe(first)
  }
  for (const field of ['name', 'user'] as const) {
    // JSON can carry "\ud800", UTF-8 cannot: the key bytes would no longer spell the name
    if (LONE_SURROGATE.test(input[field])) {
      const got = JSON.stringify(input[field])
      throw new InvalidPageEventError(field, `must be well-formed Unicode (got a lone surrogate in ${got})`)
    }
  }
  const epochMs = typeof input.date === 'number' ? input.date : Date.parse(input.date)
  if (!Number.isFinite(epochMs) || epochMs > LATEST_EPOCH_MS || (typeof input.date === 'string' && !isCalendarDate(
    input.date
  ))) {
    throw new InvalidPageEventError('date', `must be a real calendar date-time (got ${JSON.stringify(input.date)})`)
  }
  return { name: input.name, user: input.user, date: new Date(epochMs).toISOString(), duration: input.duration }
}

/**
 * A PageEvent derived from a parsed one (its `date` already normalised) is still one: the schema check
 * without parsing the date again, and on failure the error parsePageEvent would give.
 */
export function checkDerivedPageEvent (event: PageEvent): PageEvent {
  return eventCheck.Check(event) && !LONE_SURROGATE.test(event.name) && !LONE_SURROGATE.test(event.user)
    ? event
    : parsePageEvent(event)
}

/**
 * Problems of configured page or user names (a supplier's pages, a producer's users) that no PageEvent could
 * carry, each naming the variable; the PageEvent contract itself decides.
 */
export function pageEventNameProblems (variable: string, field: 'name' | 'user', values: readonly string[]): string[] {
  return values.flatMap((value) => {
    try {
      parsePageEvent({ name: 'page', user: 'user', date: 0, duration: 0, [field]: value })
      return []
    } catch (err) {
      if (!(err instanceof InvalidPageEventError)) throw err
      return [`${variable}: ${err.reason}`]
    }
  })
}

/** Date.parse rolls 2023-02-30 over to March 2nd; the written fields must name a real date and time. */
function isCalendarDate (iso: string): boolean {
  const [year, month, day, hour, minute, second] = [0, 5, 8, 11, 14, 17].map(
    (at, i) => Number(iso.slice(at, at + (i === 0 ? 4 : 2)))
  )
  if (year === undefined || month === undefined || day === undefined ||
    hour === undefined || minute === undefined) return false
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  const secondOk = iso.charAt(16) !== ':' || (second !== undefined && second <= 59)
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && secondOk
}

/** Epoch milliseconds of an event's `date`: the event time that analytics windows on. */
export function eventTime (event: PageEvent): number {
  return Date.parse(event.date)
}

export function encodePageEvent (event: PageEvent): Buffer {
  return Buffer.from(JSON.stringify({ name: event.name, user: event.user, date: event.date, duration: event.duration }))
}

export function decodePageEvent (value: Buffer | null): PageEvent {
  if (value === null || value.length === 0) throw new InvalidPageEventError('', 'the record has no value')
  let text: string
  try {
    text = strictUtf8.decode(value)
  } catch {
    // Buffer#toString would put U+FFFD in place of the bad bytes and change the event
    throw new InvalidPageEventError('', 'the value is not valid UTF-8')
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new InvalidPageEventError('', `the value is not JSON (${(err as Error).message})`)
  }
  return parsePageEvent(parsed)
}

function jsonOrUndefined (value: Buffer | null): unknown {
  try {
    return value === null ? undefined : JSON.parse(value.toString('utf8')) as unknown
  } catch {
    return undefined
  }
}

/**
 * A record another pagestream stage validated before it wrote it (the analytics repartition topic): parsed,
 * not checked again. One that does not have the PageEvent's shape after all gets the full check.
 */
export function decodeValidatedPageEvent (value: Buffer | null): PageEvent {
  const event = jsonOrUndefined(value) as Partial<Record<keyof PageEvent, unknown>> | null | undefined
  if (typeof event === 'object' && event !== null && typeof event.name === 'string' &&
    typeof event.user === 'string' && typeof event.date === 'string' && typeof event.duration === 'number') {
    return { name: event.name, user: event.user, date: event.date, duration: event.duration }
  }
  return decodePageEvent(value)
}

export const EVENT_ID_HEADER = 'event-id'

/** The Kafka message for an event: keyed by page so a page stays on one partition. */
export function pageEventMessage (event: PageEvent, eventId: string = randomUUID()) {
  return {
    key: event.name,
    value: encodePageEvent(event),
    headers: { 'content-type': 'application/json', [EVENT_ID_HEADER]: eventId },
  }
}
