import type { TProperties } from '@sinclair/typebox'
import type { StaticDecode, TObject } from '@sinclair/typebox'
import closeWithGrace from 'close-with-grace'
import Fastify, {
  type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest,
  LogController,
} from 'fastify'
import type { FastifySchemaValidationError } from 'fastify/types/schema.js'
import { type CommonConfig, ConfigError, loadConfig } from './config.js'
import { connectionDrain } from './connection-drain.js'
import { healthPlugin } from './health.js'
import { type ErrorBody, HttpError } from './http-error.js'
import { kafkaPlugin } from './kafka-plugin.js'
import { loggerOptions } from './logger.js'
import { metricsPlugin } from './metrics.js'
import { readinessMetricPlugin } from './readiness-metric.js'
import { type PortReservation, reservePort } from './port-reservation.js'
import { startTracing, stopTracing } from './tracing.js'

/** What a role is: its name, its config schema and its Fastify plugin. */
export interface Role<P extends TProperties> {
  name: string
  description: string
  config: P
  /** The role's own rules across its variables: throws a ConfigError naming them, before any connection. */
  check?: (config: StaticDecode<TObject<P>>) => void
  app: FastifyPluginAsync<{ config: StaticDecode<TObject<P>> }>
}

export type RoleConfig<R> = R extends Role<infer P> ? StaticDecode<TObject<P>> : never

/** Builds the Fastify instance of a role, exactly as production runs it (tests use this too). */
export async function createService<P extends TProperties> (
  role: Role<P>,
  config: StaticDecode<TObject<P>> & CommonConfig,
  options: { logger?: boolean } = {}
): Promise<FastifyInstance> {
  role.check?.(config)
  const fastify = serviceInstance(config, options)
  await registerRole(fastify, role, config)
  return fastify
}

/**
 * One access line per request, when it completed, with four fields: Fastify's default writes two, with
 * the request serialised through the redaction paths (about 10 % of a publish). Errors log as before.
 */
class AccessLog extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      super.requestCompleted(error, request, reply)
      return
    }
    reply.log.info({
      method: request.method, url: request.url, statusCode: reply.statusCode, responseTime: reply.elapsedTime,
    }, 'request completed')
  }
}

/** The Fastify instance with its HTTP behaviour, before any plugin (and so any Kafka client) has started. */
function serviceInstance (config: CommonConfig, options: { logger?: boolean }): FastifyInstance {
  const fastify = Fastify({
    logger: options.logger === false ? false : loggerOptions(config.LOG_LEVEL),
    logController: new AccessLog(),
    requestTimeout: 30_000,
    connectionTimeout: 10_000,
    // idle keep-alive sockets are closed by connectionDrain below; requests under way finish (SSE ends in its plugin)
    forceCloseConnections: 'idle',
    trustProxy: trustedProxies(config.HTTP_TRUST_PROXY),
    // a 256-character page name, every character percent-encoded UTF-8 (Fastify's default is 100)
    routerOptions: { maxParamLength: 256 * 12 },
    // no type coercion: a body of the wrong types is a 400, as the same record from Kafka is a dead letter
    ajv: { customOptions: { verbose: true, coerceTypes: false } },
    schemaErrorFormatter: validationMessage,
  })

  fastify.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    const status = error.statusCode ?? 500
    if (error instanceof HttpError) {
      if (status >= 500) request.log.warn({ err: error }, 'request refused')
      return reply.code(status).headers(error.headers).send(errorBody(status, error.message))
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const type = request.headers['content-type'] ?? 'none'
      return reply.code(415).send(errorBody(415, `content-type ${type} is not supported; send application/json`))
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(status).send(errorBody(status, 'internal error'))
    }
    return reply.code(status).send(errorBody(status, error.message))
  })
  fastify.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(errorBody(404, `no route ${request.method} ${request.url.split('?')[0]}`))
  })

  // on close, keep-alive clients are told to go (503 or Connection: close) rather than reset mid-request
  const drain = connectionDrain(fastify.server)
  fastify.addHook('onSend', async (_request, reply) => { if (drain.draining) reply.header('connection', 'close') })
  fastify.addHook('preClose', async () => { drain.start() })
  return fastify
}

async function registerRole<P extends TProperties> (
  fastify: FastifyInstance,
  role: Role<P>,
  config: StaticDecode<TObject<P>> & CommonConfig
): Promise<void> {
  await fastify.register(healthPlugin)
  await fastify.register(metricsPlugin, { role: role.name })
  await fastify.register(readinessMetricPlugin)
  await fastify.register(kafkaPlugin, { config })
  await fastify.register(role.app, { config })
}

/** HTTP_TRUST_PROXY: empty trusts no proxy, "true" any, otherwise a comma-separated list of addresses or CIDRs. */
function trustedProxies (setting: string): boolean | string {
  if (setting === '' || setting === 'false') return false
  if (setting === 'true') return true
  return setting
}

type AjvError = FastifySchemaValidationError & { parentSchema?: { description?: string }, data?: unknown }

/** "body.date must be an ISO 8601 date-time or epoch milliseconds (got "x")": the field, what it takes, what came. */
function validationMessage (validationErrors: FastifySchemaValidationError[], dataVar: string): Error {
  const errors = validationErrors as AjvError[]
  const first = errors[0]
  if (first === undefined) return new Error(`${dataVar} is invalid`)
  // in a union every branch reports; the deepest path is where the data really went wrong
  const depth = (e: AjvError) => e.instancePath.split('/').length
  const deepest = errors.reduce((a, b) => depth(b) > depth(a) ? b : a, first)
  const sameField = errors.filter((e) => e.instancePath === deepest.instancePath)
  const field = `${dataVar}${deepest.instancePath.replaceAll('/', '.')}`
  const missing = sameField.find((e) => e.keyword === 'required')
  if (missing !== undefined) return new Error(`${field}.${String(missing.params.missingProperty)} is required`)
  const described = (e: AjvError) => e.parentSchema?.description !== undefined
  // a specific failure (too many items, below minimum) beats "matches no branch of the union"
  const chosen = sameField.find((e) => described(e) && !['type', 'anyOf', 'oneOf'].includes(e.keyword)) ??
    [...sameField].reverse().find(described)
  if (chosen === undefined) return new Error(`${field} ${deepest.message ?? 'is invalid'}`)
  const got = typeof chosen.data === 'object' && chosen.data !== null ? '' : ` (got ${JSON.stringify(chosen.data)})`
  return new Error(`${field} must be ${chosen.parentSchema?.description}${got}`)
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}
function reasonPhrase (status: number): string {
  return REASONS[status] ?? (status >= 500 ? 'Server Error' : 'Client Error')
}

function errorBody (statusCode: number, message: string): ErrorBody {
  return { statusCode, error: reasonPhrase(statusCode), message }
}

/** `--help`: the role and every variable of its schema with its default, generated from the schema. */
export function helpText<P extends TProperties> (role: Role<P>): string {
  const lines = [`pagestream ${role.name}: ${role.description}`, '', 'Configuration (environment variables):']
  for (const [name, schema] of Object.entries(role.config)) {
    const fallback = schema.default === undefined ? '(required)' : `default ${JSON.stringify(schema.default)}`
    lines.push(`  ${name.padEnd(28)} ${schema.description ?? ''} [${fallback}]`)
  }
  return lines.join('\n')
}

/** The production entry point: config, Fastify, graceful shutdown on SIGTERM/SIGINT, listen. */
export async function runService<P extends TProperties> (role: Role<P>, argv = process.argv.slice(2)): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${helpText(role)}\n`)
    return
  }
  let config: StaticDecode<TObject<P>> & CommonConfig
  try {
    config = loadConfig(role.config) as StaticDecode<TObject<P>> & CommonConfig
    role.check?.(config)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`pagestream ${role.name}: ${err.message}\n`)
    process.exitCode = 2
    return
  }
  let fastify: FastifyInstance | undefined
  let stopping = false
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
    if (fastify === undefined) {
      if (err !== undefined) {
        process.stderr.write(`pagestream ${role.name}: failed before it was ready: ${err.stack ?? err.message}\n`)
      }
      return
    }
    if (err !== undefined) fastify.log.error({ err }, 'stopping after an error')
    else fastify.log.info({ signal }, 'stopping')
    stopping = true
    await fastify.close()
    await stopTracing()
  })
  let reservation: PortReservation | undefined
  try {
    await startTracing(config)
    fastify = serviceInstance(config, {})
    // local problems (port taken) first: a failed start must not join a group or fence a running replica
    reservation = await reservePort(config.HTTP_HOST, config.HTTP_PORT)
    await registerRole(fastify, role, config)
    await fastify.ready()
    const port = reservation.port
    await reservation.release()
    reservation = undefined
    // a signal during start-up: the close under way ends the process, nothing is to be served
    if (!stopping) await fastify.listen({ host: config.HTTP_HOST, port })
  } catch (err) {
    // start-up failed (port taken, broker refused topic creation, bad client setting): say why, exit 1
    const error = err as Error
    if (fastify !== undefined) fastify.log.fatal({ err: error }, 'start-up failed')
    else process.stderr.write(`pagestream ${role.name}: start-up failed: ${error.stack ?? error.message}\n`)
    await reservation?.release()
    await closeWithin(fastify, config.SHUTDOWN_TIMEOUT_MS)
    process.exit(1)
  }
}

/** Closes what a failed start opened, but never waits longer than the shutdown timeout for it. */
async function closeWithin (fastify: FastifyInstance | undefined, timeoutMs: number): Promise<void> {
  if (fastify === undefined) return
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timed out'>((resolve) => { timer = setTimeout(() => resolve('timed out'), timeoutMs) })
  const outcome = await Promise.race([fastify.close().then(() => 'closed' as const, () => 'closed' as const), timedOut])
  clearTimeout(timer)
  if (outcome === 'timed out') fastify.log.error({ timeoutMs }, 'closing after the failed start-up timed out')
}
