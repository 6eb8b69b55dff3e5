import { Type, type StaticDecode, type TObject, type TProperties, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { commonRuleProblems } from './config-rules.js'
import { LEGAL_TOPIC_PATTERN } from './topics.js'
import { tracingConfig } from './tracing.js'

/** A comma-separated list in one environment variable, e.g. `KAFKA_BROKERS=a:9092,b:9092`. */
export function CsvList (options: { default: string, description: string, itemPattern?: string }) {
  const item = options.itemPattern ?? '[^,\\s]+'
  return Type.Transform(Type.String({
    pattern: `^\\s*${item}\\s*(,\\s*${item}\\s*)*$`,
    default: options.default,
    description: options.description,
  }))
    .Decode((value) => value.split(',').map((part) => part.trim()))
    .Encode((list) => list.join(','))
}

/** A topic-name variable, refused at start-up unless Kafka would accept the name (empty allowed when optional). */
export function TopicName (fallback: string, description: string, options: { optional?: boolean } = {}) {
  const legal = LEGAL_TOPIC_PATTERN.slice(1, -1)
  return Type.String({
    pattern: options.optional === true ? `^(${legal})?$` : LEGAL_TOPIC_PATTERN,
    default: fallback,
    description,
    expected: 'a Kafka topic name: 1 to 249 ASCII letters, digits, ".", "_" or "-"',
  })
}

const Port = (port: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: port, description })

/** Settings every role shares: HTTP, logging, the broker and its security, topic creation. */
export function commonConfig (role: string, httpPort: number) {
  return {
    HTTP_HOST: Type.String({ default: '127.0.0.1', description: 'address to listen on (the image sets 0.0.0.0)' }),
    HTTP_PORT: Port(httpPort, 'HTTP port'),
    HTTP_TRUST_PROXY: Type.String({
      default: '',
      description: 'proxies whose X-Forwarded-For names the client (for rate limits and logs): ' +
        'empty none, true any, or addresses/CIDRs',
    }),
    LOG_LEVEL: Type.Union([
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info', description: 'pino log level' }),
    SHUTDOWN_TIMEOUT_MS: Type.Integer({
      minimum: 1000, default: 10_000, description: 'longest graceful shutdown before exit',
    }),
    KAFKA_BROKERS: CsvList({ default: 'localhost:9092', description: 'bootstrap brokers, host:port,host:port' }),
    KAFKA_CLIENT_ID: Type.String({
      minLength: 1, default: `pagestream-${role}`, description: 'client.id sent to the broker',
    }),
    KAFKA_SECURITY_PROTOCOL: Type.Union([
      Type.Literal('plaintext'), Type.Literal('ssl'), Type.Literal('sasl_plaintext'), Type.Literal('sasl_ssl'),
    ],
    { default: 'plaintext', description: 'security.protocol' }),
    KAFKA_SASL_MECHANISM: Type.Union([
      Type.Literal('PLAIN'), Type.Literal('SCRAM-SHA-256'), Type.Literal('SCRAM-SHA-512'),
    ],
    { default: 'SCRAM-SHA-256', description: 'SASL mechanism when the protocol is sasl_*' }),
    KAFKA_SASL_USERNAME: Type.String({ default: '', description: 'SASL user (required with sasl_*)' }),
    KAFKA_SASL_PASSWORD: Type.String({
      default: '', description: 'SASL password (required with sasl_*); never logged',
    }),
    KAFKA_SSL_CA_LOCATION: Type.String({
      default: '', description: 'PEM file of the CA that signed the brokers (ssl, sasl_ssl)',
    }),
    KAFKA_TOPIC_PARTITIONS: Type.Integer({
      minimum: 1, default: 3, description: 'partitions of the topics this role creates',
    }),
    KAFKA_TOPIC_REPLICATION: Type.Integer({
      minimum: -1, default: 1, description: 'replication factor of created topics (-1: broker default)',
    }),
    ...tracingConfig(role),
  }
}

export type CommonConfigSchema = ReturnType<typeof commonConfig>
export type CommonConfig = StaticDecode<TObject<CommonConfigSchema>>

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
  }
}

const SECRET = /PASSWORD|SECRET|TOKEN/

function shown (variable: string, value: unknown): string {
  return SECRET.test(variable) ? '(hidden)' : JSON.stringify(value)
}

function expected (schema: TSchema | undefined): string {
  if (schema === undefined) return 'a valid value'
  if (typeof schema.expected === 'string') return schema.expected
  if (Array.isArray(schema.anyOf)) return `one of ${schema.anyOf.map((s: TSchema) => s.const).join(', ')}`
  if (schema.type === 'integer') {
    const range = [
      schema.minimum !== undefined ? `>= ${schema.minimum}` : '',
      schema.maximum !== undefined ? `<= ${schema.maximum}` : '',
    ]
    return `an integer ${range.filter(Boolean).join(' and ')}`.trim()
  }
  return schema.description ?? 'a valid value'
}

/**
 * Reads the variables a schema names from the environment, applies defaults and converts types.
 * Every problem names its variable; secrets are never echoed.
 */
export function loadConfig<P extends TProperties> (
  properties: P, env: NodeJS.ProcessEnv = process.env
): StaticDecode<TObject<P>> {
  const schema = Type.Object(properties)
  const raw: Record<string, unknown> = {}
  for (const name of Object.keys(properties)) {
    const value = env[name]
    if (value !== undefined && value !== '') raw[name] = value.trim()
  }
  const converted = Value.Convert(schema, Value.Default(schema, raw)) as Record<string, unknown>
  for (const [name, property] of Object.entries(properties)) {
    const written = env[name]?.trim()
    // Convert reads "5e3" as 5 and "0x10" as 16: an integer is written in decimal digits or refused as written
    if (property.type === 'integer' && written && !/^[+-]?\d+$/.test(written)) converted[name] = written
  }
  const problems = [...Value.Errors(schema, converted)].map((error) => {
    const variable = error.path.replace(/^\//, '')
    const value = converted[variable]
    return `${variable}: must be ${expected(properties[variable])} (got ${shown(variable, value)})`
  })
  const unique = [...new Set(problems)]
  if (unique.length > 0) throw new ConfigError(unique)
  const config = Value.Decode(schema, converted)
  const rules = commonRuleProblems(config as Record<string, unknown>)
  if (rules.length > 0) throw new ConfigError(rules)
  return config
}
