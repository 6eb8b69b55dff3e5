import { Counter, Histogram, type Registry } from 'prom-client'
import type { StreamTaskObserver } from './stream-task-types.js'

export interface StreamTaskMetricNames {
  /** Prefix of every name: `pagestream_transformer`, `analytics_repartition`. */
  prefix: string
  /** What the task does to a record, in the written-records counter `<prefix>_records_<verb>_total`. */
  verb: string
  /** Help text of that counter. */
  writtenHelp: string
}

/** Prometheus counters of what a stream task's transactions did, registered on the role's registry. */
export function streamTaskMetrics (registry: Registry, names: StreamTaskMetricNames): StreamTaskObserver {
  const { prefix } = names
  const registers = [registry]
  const written = new Counter({ name: `${prefix}_records_${names.verb}_total`, help: names.writtenHelp, registers })
  const deadLettered = new Counter({
    name: `${prefix}_records_dead_lettered_total`,
    help: 'input records written to the dead-letter topic (committed transactions only)',
    registers,
  })
  const transactions = new Counter({
    name: `${prefix}_transactions_total`, help: 'Kafka transactions by outcome', labelNames: ['outcome'], registers,
  })
  const transactionDuration = new Histogram({
    name: `${prefix}_transaction_duration_seconds`,
    help: 'time from begin to commit of a transaction',
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers,
  })
  const producerReplacements = new Counter({
    name: `${prefix}_producer_replacements_total`,
    help: 'transactional producers replaced after an abort was impossible (fenced or fatal)',
    registers,
  })
  const consumerFatalErrors = new Counter({
    name: `${prefix}_consumer_fatal_errors_total`,
    help: 'fatal consumer errors (a static member fenced by a twin with its id...), each followed by new clients',
    registers,
  })
  const standDowns = new Counter({
    name: `${prefix}_stand_downs_total`,
    help: 'times the task closed its clients and stopped processing, by reason (fenced, consumer fatal error)',
    labelNames: ['reason'],
    registers,
  })
  const recoveries = new Counter({
    name: `${prefix}_recoveries_total`,
    help: 'times a stood-down task opened new clients and took part in its group again (recovery policy recover)',
    registers,
  })
  transactions.inc({ outcome: 'committed' }, 0)
  transactions.inc({ outcome: 'aborted' }, 0)
  return {
    committed: (result) => {
      written.inc(result.written)
      deadLettered.inc(result.deadLettered)
      transactions.inc({ outcome: 'committed' })
      transactionDuration.observe(result.seconds)
    },
    aborted: () => { transactions.inc({ outcome: 'aborted' }) },
    producerReplaced: () => { producerReplacements.inc() },
    consumerFailed: () => { consumerFatalErrors.inc() },
    stoodDown: (reason) => { standDowns.inc({ reason }) },
    recovered: () => { recoveries.inc() },
  }
}
