import fp from 'fastify-plugin'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance { metrics: Registry }
}

/** Prometheus text at /metrics: process metrics, HTTP latency by route, and whatever the role registers. */
export const metricsPlugin = fp<{ role: string }>(async (fastify, options) => {
  const registry = new Registry()
  registry.setDefaultLabels({ role: options.role })
  collectDefaultMetrics({ register: registry })
  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  })
  fastify.decorate('metrics', registry)
  fastify.addHook('onResponse', async (request, reply) => {
    requestDuration.observe({
      method: request.method,
      route: request.routeOptions.url ?? 'unknown',
      status: String(reply.statusCode),
    }, reply.elapsedTime / 1000)
  })
  fastify.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}, { name: 'pagestream-metrics' })
