import type { WindowState } from './window-geometry.js'

/** Headers of a lab-compatible record: the window it counts, which its Long value cannot say. */
export const LAB_COMPAT_HEADERS = { windowStart: 'window-start', windowEnd: 'window-end', final: 'final' } as const

export interface LabCountMessage { key: string, value: Buffer, headers: Record<string, string> }

/**
 * A window update as the lab's Kafka Streams job wrote it: String key = page, value = the count as
 * an 8-byte big-endian Long (what the Java client's LongSerializer writes and LongDeserializer reads).
 */
export function labCountMessage (window: WindowState, final: boolean): LabCountMessage {
  const value = Buffer.alloc(8)
  value.writeBigInt64BE(BigInt(window.count))
  return {
    key: window.page,
    value,
    headers: {
      [LAB_COMPAT_HEADERS.windowStart]: new Date(window.start).toISOString(),
      [LAB_COMPAT_HEADERS.windowEnd]: new Date(window.end).toISOString(),
      [LAB_COMPAT_HEADERS.final]: String(final),
    },
  }
}
