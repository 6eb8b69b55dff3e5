import t from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import type { Producer } from '@pagestream/core'
import { SupplyLoop, labEventSource } from '../src/supply-loop.js'
import { waitFor } from '@pagestream/test-kit'

const silent = pino({ level: 'silent' })

/** Counts sends; the loop's scheduling is what is under test here, not the broker. */
function countingProducer () {
  const sent: unknown[] = []
  const producer = { send: async (record: unknown) => { sent.push(record); return [] } } as unknown as Producer
  return { sent, producer }
}

t.test('after a stall of more than a second the missed ticks are skipped, not sent in a burst', async (t) => {
  const { sent, producer } = countingProducer()
  const loop = new SupplyLoop(producer, 'R2', labEventSource(['P1'], ['U1'], 100), 10, silent, new Registry())
  loop.resume()
  t.teardown(() => loop.stop())
  await waitFor('the loop to run', () => sent.length >= 5)
  const stalledAt = performance.now()
  while (performance.now() - stalledAt < 1_500) { /* block the event loop like a suspended machine */ }
  const before = sent.length
  await waitFor('the loop to go on', () => sent.length >= before + 5)
  const status = loop.status
  t.ok(status.skipped >= 100, `skipped ${status.skipped} ticks of the 150 missed`)
  t.ok(sent.length - before < 60, `sent ${sent.length - before} after the stall instead of ~150 back to back`)
})

t.test('pause stops the ticks and resume starts them again', async (t) => {
  const { sent, producer } = countingProducer()
  const loop = new SupplyLoop(producer, 'R2', labEventSource(['P1', 'P2'], ['U1'], 100), 10, silent, new Registry())
  loop.resume()
  await waitFor('events', () => sent.length >= 3)
  await loop.stop()
  const stopped = sent.length
  t.equal(loop.status.running, false)
  loop.resume()
  await waitFor('events after resume', () => sent.length >= stopped + 3)
  await loop.stop()
  t.pass('resumed')
})
