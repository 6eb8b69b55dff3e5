import t from 'tap'
import {
  type KafkaMessage, startTracing, stopTracing, traceBatch, traceConsumed, tracedSend,
} from '@pagestream/core'
import { waitFor } from '@pagestream/test-kit'
import { startCollector } from '@pagestream/test-kit/otelcol'

const ERROR = 2
const settings = (endpoint: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '', OTEL_SERVICE_NAME: 'core-test',
})
const record = (offset: string, traceparent: string): KafkaMessage =>
  ({ key: null, value: Buffer.from('{}'), timestamp: '0', attributes: 0, offset, headers: { traceparent } })

t.test('failures show as error spans, and the failure still reaches the caller', async (t) => {
  const collector = await startCollector(t)
  t.equal(await startTracing(settings(collector.endpoint)), true)
  t.equal(await startTracing(settings(collector.endpoint)), true, 'a second start keeps the running SDK')
  t.teardown(stopTracing)
  const traceparent = `00-${'e'.repeat(32)}-${'f'.repeat(16)}-01`
  const batch = (topic: string) => ({ topic, partition: 0, messages: [record('7', traceparent)] })

  await t.rejects(tracedSend('unacknowledged', { headers: {} }, async () => { throw new Error('no ack') }), /no ack/)
  t.throws(() => traceConsumed(batch('thrown'), 'g', () => { throw new Error('bad batch') }), /bad batch/)
  await t.rejects(traceConsumed(batch('rejected'), 'g', async () => { throw new Error('bad dead letter') }),
    /bad dead letter/)
  t.throws(() => traceBatch(batch('aborted'), 'g', () => { throw new Error('bad transform') }), /bad transform/)
  const passed = traceBatch(batch('untraced-output'), 'g', () => ({
    outputs: [{ topic: 'out', messages: [{ key: null, value: 'x', headers: { traceparent: 'not an input\'s' } }] }],
    deadLetters: [],
    nextOffset: '8',
  }))
  t.same(passed.outputs[0]?.messages[0]?.headers, { traceparent: 'not an input\'s' },
    'an output that carries no input\'s context is left as it is')
  await stopTracing()

  const names = [
    'send unacknowledged', 'process thrown', 'process rejected', 'process aborted', 'process untraced-output',
  ]
  // flushed to the collector on stop; the collector passes them on by itself a moment later
  const spans = await waitFor('the five spans at the collector', () => {
    const found = collector.spans()
    return names.every((name) => found.some((s) => s.name === name)) && found
  }, 30_000, 100)
  const status = (name: string) => spans.find((s) => s.name === name)?.status
  t.equal(status('send unacknowledged'), ERROR, 'a send that failed')
  t.equal(status('process thrown'), ERROR, 'a batch whose work threw')
  t.equal(status('process rejected'), ERROR, 'a batch whose work rejected')
  t.equal(status('process aborted'), ERROR, 'a stream task batch that threw')
  t.equal(status('process untraced-output'), 0, 'a batch that went well')
  t.ok(spans.every((s) => s.service === 'core-test'), 'OTEL_SERVICE_NAME names the service')
  t.notOk(spans.some((s) => s.name === 'create out'), 'no create span for an output of no traced input')
})
