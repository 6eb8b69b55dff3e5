import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'

/**
 * `pagestream_ready` 1 or 0: what /health/ready would answer, read at each scrape, so an alert can tell a role
 * that answers /metrics but takes no traffic (no partitions, broker lost, shutting down) from a healthy one.
 */
export const readinessMetricPlugin = fp(async (fastify) => {
  const ready = new Gauge({
    name: 'pagestream_ready',
    help: '1 while every readiness check holds (/health/ready answers 200), else 0',
    registers: [fastify.metrics],
    collect: () => { ready.set(fastify.health.readiness().ready ? 1 : 0) },
  })
}, { name: 'pagestream-readiness-metric', dependencies: ['pagestream-health', 'pagestream-metrics'] })
