#!/usr/bin/env node
import { createInterface } from 'node:readline'
import { InvalidPageEventError, pageEventMessage, parsePageEvent, producerProperties } from '@pagestream/core'
import { startCli } from './cli.js'

const { topic, values, kafka } = startCli(`Usage: pagestream-produce [--raw] TOPIC < lines

Sends each line of standard input to TOPIC, like kafka-console-producer. A line is a PageEvent
as JSON (validated, keyed by page, date as ISO 8601 or epoch ms); with --raw it is sent as it is.
Bad lines are reported on standard error and skipped, as are sends the broker did not acknowledge
(a missing topic is not created); the exit code is 1 if any was.`, { raw: { type: 'boolean' } })

const MAX_IN_FLIGHT = 1000

const producer = kafka.producer(producerProperties({ lingerMs: 5, deliveryTimeoutMs: 10_000 }))
await producer.connect()
let sent = 0
let refused = 0
let failed = 0
const sends = new Set<Promise<unknown>>()
let lineNumber = 0
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  lineNumber++
  if (line.trim() === '') continue
  try {
    const message = values.raw === true ? { value: line } : pageEventMessage(parsePageEvent(JSON.parse(line)))
    const at = lineNumber
    const sending: Promise<unknown> = producer.send({ topic, messages: [message] })
      .then(() => { sent++ })
      .catch((err: Error) => { failed++; process.stderr.write(`line ${at} not sent: ${err.message}\n`) })
      .finally(() => sends.delete(sending))
    sends.add(sending)
    if (sends.size >= MAX_IN_FLIGHT) await Promise.race(sends)
  } catch (err) {
    refused++
    const reason = err instanceof InvalidPageEventError || err instanceof SyntaxError ? err.message : String(err)
    process.stderr.write(`line ${lineNumber} skipped: ${reason}\n`)
  }
}
try {
  await Promise.all(sends)
} finally {
  await producer.disconnect()
}
const skipped = refused > 0 ? `, ${refused} skipped` : ''
const unacknowledged = failed > 0 ? `, ${failed} not acknowledged` : ''
process.stderr.write(`${sent} sent to ${topic}${skipped}${unacknowledged}\n`)
process.exitCode = refused > 0 || failed > 0 ? 1 : 0
