import { setTimeout as sleep } from 'node:timers/promises'
import ckjs from '@confluentinc/kafka-javascript'
import type { FastifyBaseLogger } from 'fastify'
import { type KafkaClient, type Producer, producerProperties } from './kafka.js'

const { ErrorCodes } = ckjs.KafkaJS

/**
 * A newer producer with our transactional.id exists (librdkafka reports an older epoch this way too).
 * Judged by the error code: the `fatal`/`abortable`/`retriable` flags of 1.10.1 cannot be relied on.
 */
export function isFenced (err: unknown): boolean {
  const code = (err as { code?: number } | undefined)?.code
  return code === ErrorCodes.ERR__FENCED || code === ErrorCodes.ERR_PRODUCER_FENCED
}

/**
 * Wait before trying again after `failures` failures in a row: 100 ms doubling per failure, at most 5 s;
 * cut short once `signal` aborts.
 */
export async function failureBackoff (failures: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await sleep(Math.min(100 * 2 ** Math.min(failures, 6), 5_000), undefined, { signal })
    .catch(() => {}) // stopped: cut the wait short
}

export type AbortOrReplaceOutcome = 'aborted' | 'replaced' | 'fenced' | 'closing'

export interface TransactionalProducerOptions {
  client: KafkaClient
  transactionalId: string
  transactionTimeoutMs?: number
  deliveryTimeoutMs?: number
  log: FastifyBaseLogger
  /** Aborted when the owner stops: no more retries, waits cut short. */
  closing: AbortSignal
  /** Failed transactions in a row, for the wait between tries to open a replacement producer. */
  failures: () => number
  /** Tries of one commit that fails with a retriable error, before the commit is given up (default 1). */
  commitAttempts?: number
  /** An error that explains why transactions cannot commit now: a fenced abort, a replacement that cannot open. */
  onError?: (err: Error) => void
  /** A new producer took the place of one that could not begin, complete or abort a transaction. */
  onReplaced?: () => void
}

/**
 * The librdkafka transactional producer of one processor, across its replacements: the owner
 * begins, sends and sends offsets on `current`, commits through `commit`, and hands every failure
 * to `abortOrReplace`, then applies its own policy (rewind, step down) to the outcome.
 */
export class TransactionalProducer {
  readonly #options: TransactionalProducerOptions
  #current: Producer | undefined
  #closed = false

  private constructor (options: TransactionalProducerOptions) {
    this.#options = options
  }

  /** connect() runs initTransactions: it fences an earlier incarnation and aborts its open transaction. */
  static async open (options: TransactionalProducerOptions): Promise<TransactionalProducer> {
    const producer = new TransactionalProducer(options)
    producer.#current = await producer.#connect()
    return producer
  }

  /** The producer to run the next transaction on; undefined while it is replaced or once closed. */
  get current (): Producer | undefined { return this.#current }
  get ready (): boolean { return this.#current !== undefined }

  async #connect (): Promise<Producer> {
    const { client, transactionalId, transactionTimeoutMs, deliveryTimeoutMs } = this.#options
    const producer = client.producer(producerProperties({ transactionalId, transactionTimeoutMs, deliveryTimeoutMs }))
    await producer.connect()
    return producer
  }

  /**
   * librdkafka lets a commit that failed with a retriable error (a timeout, a broker that was
   * not available) be called again; it then finishes the same commit instead of starting over.
   */
  async commit (): Promise<void> {
    const producer = this.#current
    if (producer === undefined) throw new Error(`transactional producer ${this.#options.transactionalId} is closed`)
    const attempts = this.#options.commitAttempts ?? 1
    for (let attempt = 1; ; attempt += 1) {
      try {
        await producer.commit()
        return
      } catch (err) {
        if ((err as {
          retriable?: boolean,
        }).retriable !== true || attempt >= attempts || this.#options.closing.aborted) throw err
        this.#options.log.warn({ err, attempt }, 'commit failed with a retriable error; trying again')
      }
    }
  }

  /**
   * Aborts the open transaction, or, when the producer cannot start, complete or abort one, replaces
   * it with a new one of the same transactional.id (whose initTransactions also settles a commit
   * whose outcome is unknown). Fenced: another instance owns the transactional.id now.
   */
  async abortOrReplace (cause: Error): Promise<AbortOrReplaceOutcome> {
    const producer = this.#current
    if (producer === undefined) return 'closing'
    if (isFenced(cause)) return 'fenced'
    const { log, closing } = this.#options
    if (producer.isActive()) {
      try {
        await producer.abort()
        return 'aborted'
      } catch (err) {
        if (isFenced(err)) {
          this.#options.onError?.(err as Error)
          return 'fenced'
        }
        log.warn({ err }, 'abort failed: replacing the transactional producer')
      }
    }
    this.#current = undefined
    await producer.disconnect().catch(() => {})
    while (!closing.aborted && !this.#closed) {
      try {
        const replacement = await this.#connect()
        if (this.#closed) {
          // closed while this one connected: it has no owner any more
          await replacement.disconnect().catch(() => {})
          break
        }
        this.#current = replacement
        this.#options.onReplaced?.()
        return 'replaced'
      } catch (err) {
        this.#options.onError?.(err as Error)
        log.warn({ err }, 'could not open a new transactional producer; retrying')
        await failureBackoff(this.#options.failures(), closing)
      }
    }
    return 'closing'
  }

  /** Disconnects; a transaction left open is aborted by the broker, or by the next incarnation's initTransactions. */
  async close (): Promise<void> {
    this.#closed = true
    const producer = this.#current
    this.#current = undefined
    await producer?.disconnect()
  }
}
