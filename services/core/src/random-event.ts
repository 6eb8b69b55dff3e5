import { randomInt } from 'node:crypto'
import type { PageEvent } from './page-event.js'

function pick<T> (items: readonly T[]): T {
  const item = items[randomInt(items.length)]
  if (item === undefined) throw new Error('cannot pick from an empty list')
  return item
}

/** The lab's random PageEvent: a page and a user from the lists, now, a duration below maxDurationMs. */
export function randomPageEvent (
  options: { pages: readonly string[], users: readonly string[], maxDurationMs?: number, now?: number }
): PageEvent {
  return {
    name: pick(options.pages),
    user: pick(options.users),
    date: new Date(options.now ?? Date.now()).toISOString(),
    duration: randomInt(options.maxDurationMs ?? 10_000),
  }
}
