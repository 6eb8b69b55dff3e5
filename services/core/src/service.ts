import type { TProperties } from '@sinclair/typebox'
import type { StaticDecode, TObject } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import closeWithGrace from 'close-with-grace'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { type CommonConfig, ConfigError, loadConfig } from './config.js'
import { healthPlugin } from './health.js'
import { HttpError } from './http-error.js'
import { kafkaPlugin } from './kafka-plugin.js'
import { loggerOptions } from './logger.js'
import { metricsPlugin } from './metrics.js'

export type ServiceInstance = FastifyInstance & { withTypeProvider: FastifyInstance['withTypeProvider'] }

/** What a role is: its name, its config schema and its Fastify plugin. */
export interface Role<P extends TProperties> {
  name: string
  description: string
  config: P
  app: FastifyPluginAsync<{ config: StaticDecode<TObject<P>> }>
}

export type RoleConfig<R> = R extends Role<infer P> ? StaticDecode<TObject<P>> : never

/** Builds the Fastify instance of a role, exactly as production runs it (tests use this too). */
export async function createService<P extends TProperties> (
  role: Role<P>,
  config: StaticDecode<TObject<P>> & CommonConfig,
  options: { logger?: boolean } = {},
): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: options.logger === false ? false : loggerOptions(config.LOG_LEVEL),
    requestTimeout: 30_000,
    connectionTimeout: 10_000,
    // SSE connections stay open; closing the server must not wait for them forever
    forceCloseConnections: true,
    schemaErrorFormatter: (errors, dataVar) => {
      const first = errors[0]
      const field = `${dataVar}${(first?.instancePath ?? '').replaceAll('/', '.')}`
      return new Error(`${field} ${first?.message ?? 'is invalid'}`)
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  fastify.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    const status = error.statusCode ?? 500
    if (error instanceof HttpError) {
      if (status >= 500) request.log.warn({ err: error }, 'request refused')
      return reply.code(status).headers(error.headers).send({ statusCode: status, error: reasonPhrase(status), message: error.message })
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(status).send({ statusCode: status, error: reasonPhrase(status), message: 'internal error' })
    }
    return reply.code(status).send({ statusCode: status, error: reasonPhrase(status), message: error.message })
  })
  fastify.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` })
  })

  await fastify.register(healthPlugin)
  await fastify.register(metricsPlugin, { role: role.name })
  await fastify.register(kafkaPlugin, { config })
  await fastify.register(role.app, { config })
  return fastify
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
}
function reasonPhrase (status: number): string {
  return REASONS[status] ?? (status >= 500 ? 'Server Error' : 'Client Error')
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
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`pagestream ${role.name}: ${err.message}\n`)
    process.exitCode = 2
    return
  }
  let fastify: FastifyInstance | undefined
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async ({ signal, err }) => {
    if (err !== undefined) fastify?.log.error({ err }, 'stopping after an error')
    else fastify?.log.info({ signal }, 'stopping')
    await fastify?.close()
  })
  fastify = await createService(role, config)
  await fastify.listen({ host: config.HTTP_HOST, port: config.HTTP_PORT })
}
