import { register } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
import t from 'tap'
import { deleteTopics, readTopic, uniqueName, waitFor } from '@pagestream/test-kit'

// Every import from here on is reported, in order; the roles load only after this (dynamic imports below).
const resolved: string[] = []
const { port1, port2 } = new MessageChannel()
port1.on('message', (specifier: string) => resolved.push(specifier))
port1.unref()
register('./fixtures/opentelemetry-resolves.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] })

t.test('with no OTLP endpoint set, a role publishes with no OpenTelemetry module loaded', async (t) => {
  const { createService, loadConfig, startTracing, stopTracing } = await import('@pagestream/core')
  const { role } = await import('../services/producer/src/app.js')
  const { TEST_BROKERS } = await import('@pagestream/test-kit')
  const topic = uniqueName('untraced')
  t.teardown(() => deleteTopics([topic]))
  const config = loadConfig(role.config, { KAFKA_BROKERS: TEST_BROKERS, LOG_LEVEL: 'silent', PRODUCER_TOPICS: topic })
  t.equal(await startTracing(config), false, 'tracing stays off')
  const fastify = await createService(role, config, { logger: false })
  t.teardown(() => fastify.close())
  t.equal((await fastify.inject(`/publish/${topic}/untraced`)).statusCode, 200, 'published')
  const [record] = await readTopic(topic, { count: 1, settleMs: 0 })
  t.equal(record?.headers.traceparent, undefined, 'the record carries no trace')
  // the reports come in order: once this one arrived, every earlier import has been reported
  const marker = 'data:text/javascript,export default "untraced so far"'
  await import(marker)
  const untraced = await waitFor('the hooks to report the marker', () =>
    resolved.includes(marker) && resolved.slice(0, resolved.indexOf(marker)))
  t.ok(untraced.length > 0, 'the hooks saw the role load')
  t.same(untraced.filter((s) => s.startsWith('@opentelemetry/')), [], 'no OpenTelemetry module was resolved')

  // the control: switched on, the same process resolves the SDK, and the hooks report it
  t.equal(await startTracing({ ...config, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' }), true)
  t.teardown(stopTracing)
  await waitFor('the hooks to report the SDK', () => resolved.includes('@opentelemetry/sdk-trace-node'), 10_000)
  t.pass('switched on, the SDK is loaded')
})
