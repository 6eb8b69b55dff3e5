import type { Consumer, KafkaClient, Producer } from '@pagestream/core'
import { testKafka } from './kafka.js'
import type { Teardown } from './teardown.js'

/** Faults a client injects into the real clients it makes; each one counted in `injected()`. */
export interface Faults {
  /** So many transactions cannot even begin. */
  transactionFails?: number
  /** So many commits fail before they reach the broker. */
  commitFails?: number
  /** So many commits land and then report a failure, as one that timed out while librdkafka completed it. */
  commitLandsButFails?: number
  /** A batch send fails while this says so. */
  sendBatchFails?: () => boolean
  /** Consumers never finish closing, as librdkafka's can hang in a rebalance; really closed at teardown. */
  consumerCloseHangs?: boolean
}

export interface FaultyClient {
  client: KafkaClient
  /** How many faults were injected so far. */
  injected: () => number
  /** How many producers the client made. */
  producers: () => number
}

/** A client of the test broker whose producers and consumers fail as told: the broker itself is real. */
export function faultyClient (t: Teardown, faults: Faults): FaultyClient {
  const real = testKafka()
  let injected = 0
  let producers = 0
  const left = {
    transaction: faults.transactionFails ?? 0, commit: faults.commitFails ?? 0, landed: faults.commitLandsButFails ?? 0,
  }
  const inject = (message: string, extra: object = {}): never => {
    injected += 1
    throw Object.assign(new Error(`${message} (injected)`), extra)
  }
  const hung: Array<() => Promise<void>> = []
  t.teardown(async () => { for (const disconnect of hung) await disconnect().catch(() => {}) })

  const producer = (config: Parameters<KafkaClient['producer']>[0]): Producer => {
    const made: Producer = real.producer(config)
    producers += 1
    const transaction = made.transaction.bind(made)
    made.transaction = async () => {
      if (left.transaction > 0) { left.transaction -= 1; inject('cannot begin a transaction') }
      return transaction()
    }
    const commit = made.commit.bind(made)
    made.commit = async () => {
      if (left.commit > 0) { left.commit -= 1; inject('commit failed') }
      await commit()
      if (left.landed > 0) { left.landed -= 1; inject('commit timed out after it landed', { retriable: false }) }
    }
    const sendBatch = made.sendBatch.bind(made)
    made.sendBatch = async (batch) => {
      if (faults.sendBatchFails?.() === true) inject('send failed')
      return sendBatch(batch)
    }
    return made
  }
  const consumer = (config: Parameters<KafkaClient['consumer']>[0]): Consumer => {
    const made: Consumer = real.consumer(config)
    if (faults.consumerCloseHangs === true) {
      hung.push(made.disconnect.bind(made))
      made.disconnect = () => { injected += 1; return new Promise<void>(() => {}) }
    }
    return made
  }
  const admin = real.admin.bind(real)
  const client = { producer, consumer, admin } as unknown as KafkaClient
  return { client, injected: () => injected, producers: () => producers }
}
