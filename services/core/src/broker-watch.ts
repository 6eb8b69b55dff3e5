import type { Admin } from './kafka.js'

/**
 * Knows whether the brokers answer, by asking for metadata every interval. librdkafka reconnects
 * by itself; this only tells readiness and the producer's fast 503 what the last answer was.
 */
export class BrokerWatch {
  #reachable = false
  #timer: NodeJS.Timeout | undefined
  #probing: Promise<void> | undefined
  #lastError: string | undefined

  constructor (private readonly admin: Admin, private readonly intervalMs = 2_000) {}

  get reachable (): boolean { return this.#reachable }
  get lastError (): string | undefined { return this.#lastError }

  async start (): Promise<void> {
    await this.probe()
    this.#timer = setInterval(() => { void this.probe() }, this.intervalMs)
    this.#timer.unref()
  }

  probe (): Promise<void> {
    this.#probing ??= this.admin.listTopics({ timeout: Math.min(this.intervalMs, 1_500) })
      .then(() => { this.#reachable = true; this.#lastError = undefined })
      .catch((err: Error) => { this.#reachable = false; this.#lastError = err.message })
      .finally(() => { this.#probing = undefined })
    return this.#probing
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#probing
  }
}
