import { type Static, Type } from '@sinclair/typebox'
import fp from 'fastify-plugin'

export const CheckResultSchema = Type.Object({
  ok: Type.Boolean(),
  detail: Type.Optional(Type.String({ description: 'what the check found, or what it waits for' })),
})
export type CheckResult = Static<typeof CheckResultSchema>
export type HealthCheck = () => CheckResult

const Liveness = Type.Object({ status: Type.Literal('live') })
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not ready')]),
  checks: Type.Record(Type.String(), CheckResultSchema, { description: 'every check by name; ready when all are ok' }),
})
type ReadinessBody = Static<typeof Readiness>

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
      const results: Record<string, CheckResult> = {
        shutdown: closing ? { ok: false, detail: 'shutting down' } : { ok: true },
      }
      for (const [name, check] of checks) results[name] = check()
      return { ready: Object.values(results).every((r) => r.ok), checks: results }
    },
  }
  fastify.decorate('health', health)
  fastify.addHook('preClose', async () => { closing = true })

  fastify.get('/health/live', { logLevel: 'warn', schema: { response: { 200: Liveness } } },
    async (): Promise<Static<typeof Liveness>> => ({ status: 'live' }))
  fastify.get('/health/ready', { logLevel: 'warn', schema: { response: { 200: Readiness, 503: Readiness } } },
    async (_request, reply) => {
      const { ready, checks: results } = health.readiness()
      const body: ReadinessBody = { status: ready ? 'ready' : 'not ready', checks: results }
      return reply.code(ready ? 200 : 503).send(body)
    })
}, { name: 'pagestream-health' })
