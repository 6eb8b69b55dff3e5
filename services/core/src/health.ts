import fp from 'fastify-plugin'

export interface CheckResult { ok: boolean, detail?: string }
export type HealthCheck = () => CheckResult

export interface Health {
  /** A named condition that must hold for the role to take traffic. */
  addCheck(name: string, check: HealthCheck): void
  readiness(): { ready: boolean, checks: Record<string, CheckResult> }
}

declare module 'fastify' {
  interface FastifyInstance { health: Health }
}

/** /health/live answers while the event loop runs; /health/ready only when every check holds. */
export const healthPlugin = fp(async (fastify) => {
  const checks = new Map<string, HealthCheck>()
  let closing = false
  const health: Health = {
    addCheck: (name, check) => { checks.set(name, check) },
    readiness: () => {
      const results: Record<string, CheckResult> = { shutdown: closing ? { ok: false, detail: 'shutting down' } : { ok: true } }
      for (const [name, check] of checks) results[name] = check()
      return { ready: Object.values(results).every((r) => r.ok), checks: results }
    },
  }
  fastify.decorate('health', health)
  fastify.addHook('preClose', async () => { closing = true })

  fastify.get('/health/live', { logLevel: 'warn' }, async () => ({ status: 'live' }))
  fastify.get('/health/ready', { logLevel: 'warn' }, async (_request, reply) => {
    const { ready, checks: results } = health.readiness()
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: results })
  })
}, { name: 'pagestream-health' })
