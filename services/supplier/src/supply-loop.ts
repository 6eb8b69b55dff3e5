import { type Static, Type } from '@sinclair/typebox'
import { type PageEvent, type Producer, pageEventMessage, randomPageEvent, tracedSend } from '@pagestream/core'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, type Registry } from 'prom-client'

export const SupplyStatusSchema = Type.Object({
  running: Type.Boolean(),
  intervalMs: Type.Integer(),
  sent: Type.Integer(),
  failed: Type.Integer(),
  // a suspended laptop must not flood the topic when it wakes
  skipped: Type.Integer({ description: 'ticks given up after the loop fell more than a second behind' }),
  // performance.now(), so rates can be measured on the supplier's clock
  at: Type.Number({ description: "the supplier's monotonic clock (ms) when the status was taken" }),
})
export type SupplyStatus = Static<typeof SupplyStatusSchema>

/** Past this lag behind schedule, missed ticks are skipped instead of sent back to back. */
const MAX_CATCH_UP_MS = 1_000

/**
 * Sends one random PageEvent every interval. Ticks are scheduled from a fixed origin, not
 * from the previous tick, so the rate does not drift with send latency or timer lag.
 */
export class SupplyLoop {
  #timer: NodeJS.Timeout | undefined
  #origin = 0
  #ticks = 0
  #inFlight = new Set<Promise<void>>()
  readonly #status: SupplyStatus
  readonly #sent: Counter
  readonly #failed: Counter
  readonly #skipped: Counter

  constructor (
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly nextEvent: () => PageEvent,
    intervalMs: number,
    private readonly log: FastifyBaseLogger,
    metrics: Registry
  ) {
    this.#status = { running: false, intervalMs, sent: 0, failed: 0, skipped: 0, at: 0 }
    this.#sent = new Counter({
      name: 'pagestream_events_supplied_total', help: 'random events acknowledged by the broker', registers: [metrics],
    })
    this.#failed = new Counter({
      name: 'pagestream_supply_failures_total',
      help: 'random events the broker did not acknowledge',
      registers: [metrics],
    })
    this.#skipped = new Counter({
      name: 'pagestream_supply_ticks_skipped_total',
      help: 'ticks given up after the loop fell more than a second behind',
      registers: [metrics],
    })
  }

  get status (): SupplyStatus { return { ...this.#status, at: performance.now() } }

  resume (): void {
    if (this.#status.running) return
    this.#status.running = true
    this.#origin = performance.now()
    this.#ticks = 0
    this.#schedule()
  }

  pause (): void {
    this.#status.running = false
    clearTimeout(this.#timer)
  }

  setInterval (intervalMs: number): void {
    this.#status.intervalMs = intervalMs
    if (this.#status.running) {
      this.pause()
      this.resume()
    }
  }

  /** Stops ticking and waits for the sends already under way. */
  async stop (): Promise<void> {
    this.pause()
    await Promise.allSettled([...this.#inFlight])
  }

  #schedule (): void {
    this.#ticks++
    const interval = this.#status.intervalMs
    const behind = performance.now() - (this.#origin + this.#ticks * interval)
    if (behind > MAX_CATCH_UP_MS) {
      const missed = Math.floor(behind / interval)
      this.#ticks += missed
      this.#status.skipped += missed
      this.#skipped.inc(missed)
      this.log.warn({ missed, behindMs: Math.round(behind) }, 'the supply loop fell behind; skipping the missed ticks')
    }
    const due = this.#origin + this.#ticks * interval
    this.#timer = setTimeout(() => {
      if (!this.#status.running) return
      this.#send()
      this.#schedule()
    }, Math.max(0, due - performance.now()))
  }

  #send (): void {
    // no HTTP request around it: each supplied event starts a trace of its own
    const sending = tracedSend(this.topic, pageEventMessage(this.nextEvent()),
      (record) => this.producer.send({ topic: this.topic, messages: [record] }))
      .then(() => { this.#status.sent++; this.#sent.inc() })
      .catch((err: Error) => {
        this.#status.failed++
        this.#failed.inc()
        this.log.warn({ err }, 'a supplied event was not acknowledged')
      })
      .finally(() => this.#inFlight.delete(sending))
    this.#inFlight.add(sending)
  }
}

export function labEventSource (
  pages: readonly string[], users: readonly string[], maxDurationMs: number
): () => PageEvent {
  return () => randomPageEvent({ pages, users, maxDurationMs })
}
