import { Counter, Histogram, type Registry } from 'prom-client'
import type { ProcessorObserver } from './processor.js'

/** Prometheus counters of what the transactions did, registered on the role's registry. */
export function transformerMetrics (registry: Registry): ProcessorObserver {
  const transformed = new Counter({
    name: 'pagestream_transformer_records_transformed_total',
    help: 'input records written transformed to the output topic (committed transactions only)',
    registers: [registry],
  })
  const deadLettered = new Counter({
    name: 'pagestream_transformer_records_dead_lettered_total',
    help: 'input records written to the dead-letter topic (committed transactions only)',
    registers: [registry],
  })
  const transactions = new Counter({
    name: 'pagestream_transformer_transactions_total',
    help: 'Kafka transactions by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  })
  const transactionDuration = new Histogram({
    name: 'pagestream_transformer_transaction_duration_seconds',
    help: 'time from begin to commit of a transaction',
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  })
  const producerReplacements = new Counter({
    name: 'pagestream_transformer_producer_replacements_total',
    help: 'transactional producers replaced after an abort was impossible (fenced or fatal)',
    registers: [registry],
  })
  transactions.inc({ outcome: 'committed' }, 0)
  transactions.inc({ outcome: 'aborted' }, 0)
  return {
    committed: (result) => {
      transformed.inc(result.transformed)
      deadLettered.inc(result.deadLettered)
      transactions.inc({ outcome: 'committed' })
      transactionDuration.observe(result.seconds)
    },
    aborted: () => { transactions.inc({ outcome: 'aborted' }) },
    producerReplaced: () => { producerReplacements.inc() },
  }
}
