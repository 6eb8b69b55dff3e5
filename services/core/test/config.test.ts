import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { ConfigError, TopicName, commonConfig, loadConfig } from '@pagestream/core'

const schema = {
  ...commonConfig('test', 8099),
  BATCH_MAX: Type.Integer({ minimum: 1, default: 100, description: 'records per request' }),
}

t.test('defaults work with an empty environment', async (t) => {
  const config = loadConfig(schema, {})
  t.same(config.KAFKA_BROKERS, ['localhost:9092'])
  t.equal(config.HTTP_PORT, 8099)
  t.equal(config.BATCH_MAX, 100)
  t.equal(config.KAFKA_CLIENT_ID, 'pagestream-test')
})

t.test('strings are converted and lists split', async (t) => {
  const config = loadConfig(schema, { HTTP_PORT: '9000', KAFKA_BROKERS: 'a:9092, b:9093', LOG_LEVEL: 'debug' })
  t.equal(config.HTTP_PORT, 9000)
  t.same(config.KAFKA_BROKERS, ['a:9092', 'b:9093'])
  t.equal(config.LOG_LEVEL, 'debug')
})

t.test('a bad value stops start-up naming the variable', async (t) => {
  const error = t.throws(
    () => loadConfig(schema, { HTTP_PORT: 'eighty', BATCH_MAX: '0', LOG_LEVEL: 'loud' })
  ) as ConfigError
  t.type(error, ConfigError)
  t.match(error.message, /HTTP_PORT: must be an integer >= 0 and <= 65535 \(got "eighty"\)/)
  t.match(error.message, /BATCH_MAX: must be an integer >= 1/)
  t.match(error.message, /LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent/)
})

t.test('SASL needs credentials, and secrets are never echoed', async (t) => {
  const missing = t.throws(
    () => loadConfig(schema, { KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_PASSWORD: 'hunter2' })
  ) as ConfigError
  t.match(missing.message, /KAFKA_SASL_USERNAME: required when KAFKA_SECURITY_PROTOCOL=sasl_ssl/)
  t.notMatch(missing.message, /hunter2/)
  const config = loadConfig(
    schema, { KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' }
  )
  t.equal(config.KAFKA_SASL_PASSWORD, 'hunter2')
})

t.test('a malformed broker list is refused', async (t) => {
  t.throws(() => loadConfig(schema, { KAFKA_BROKERS: 'a:9092,,b' }), /KAFKA_BROKERS/)
})

t.test('topic-name variables take only names Kafka accepts', async (t) => {
  const topics = {
    IN: TopicName('R1', 'input'), LATE: TopicName('', 'late events (empty: derived)', { optional: true }),
  }
  t.same(loadConfig(topics, {}), { IN: 'R1', LATE: '' })
  t.same(loadConfig(topics, { IN: 'R1.dlq', LATE: 'R2.late' }), { IN: 'R1.dlq', LATE: 'R2.late' })
  const error = t.throws(() => loadConfig(topics, { IN: 'bad$name', LATE: 'x y' })) as ConfigError
  t.match(error.message, /IN: must be a Kafka topic name: 1 to 249 ASCII letters, digits/)
  t.match(error.message, /LATE: must be a Kafka topic name/)
})

t.test('a CA file must be readable; HTTP_TRUST_PROXY takes only addresses Fastify takes', async (t) => {
  const missing = t.throws(() => loadConfig(schema, { KAFKA_SSL_CA_LOCATION: '/nonexistent/ca.pem' })) as ConfigError
  const here = fileURLToPath(import.meta.url)
  t.match(missing.message, /KAFKA_SSL_CA_LOCATION: must be a readable PEM file \(got "\/nonexistent\/ca.pem"\)/)
  t.equal(loadConfig(schema, { KAFKA_SSL_CA_LOCATION: here }).KAFKA_SSL_CA_LOCATION, here)
  for (const setting of ['true', 'false', 'loopback, uniquelocal', '10.0.0.1', '10.0.0.0/8,fd00::/8',
    '192.168.0.0/255.255.0.0', '::1']) {
    t.equal(loadConfig(schema, { HTTP_TRUST_PROXY: setting }).HTTP_TRUST_PROXY, setting, `"${setting}" is taken`)
  }
  // "2" reads as a hop count to people, but Fastify would take it for the address 0.0.0.2
  for (const setting of ['proxy.example', '10.0.0.0/0', '10.0.0.0/33', '::1/129', '10.0.0.1/8/8', '2']) {
    const error = t.throws(() => loadConfig(schema, { HTTP_TRUST_PROXY: setting })) as ConfigError
    t.match(error.message, 'HTTP_TRUST_PROXY: must be empty, true, or addresses/CIDRs', `"${setting}" is refused`)
  }
})

t.test('an integer is written in decimal digits: "5e3" is not read as 5, nor "0x10" as 16', async (t) => {
  t.equal(loadConfig(schema, { BATCH_MAX: ' +250 ' }).BATCH_MAX, 250)
  for (const written of ['5e3', '0x10', '5.0', '1_000']) {
    const error = t.throws(() => loadConfig(schema, { BATCH_MAX: written })) as ConfigError
    const problem = `BATCH_MAX: must be an integer >= 1 (got "${written}")`
    t.same(error.problems, [problem], `"${written}" is refused as written`)
  }
})
