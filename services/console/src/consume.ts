#!/usr/bin/env node
import { randomUUID } from 'node:crypto'
import { consumerProperties } from '@pagestream/core'
import { startCli } from './cli.js'

const { topic, values, kafka } = startCli(`Usage: pagestream-consume [--from-beginning] [--key] [--max-messages N] TOPIC

Writes each record value of TOPIC to standard output, one per line, like kafka-console-consumer
(read_committed). New records only, unless --from-beginning. --key prints "key<TAB>value".
Stops after N records with --max-messages, otherwise on Ctrl-C.`, {
  'from-beginning': { type: 'boolean' },
  key: { type: 'boolean' },
  'max-messages': { type: 'string' },
})

const max = values['max-messages'] === undefined ? Infinity : Number(values['max-messages'])
if (max !== Infinity && (!Number.isInteger(max) || max < 1)) {
  process.stderr.write('--max-messages takes a whole number of at least 1\n')
  process.exit(2)
}
const consumer = kafka.consumer(consumerProperties({
  groupId: `pagestream-console-${randomUUID()}`, fromBeginning: values['from-beginning'] === true,
}))
await consumer.connect()
let count = 0
let stopping: Promise<void> | undefined
const stop = () => { stopping ??= consumer.disconnect(); return stopping }
process.once('SIGINT', () => { void stop() })
process.once('SIGTERM', () => { void stop() })
await consumer.subscribe({ topics: [topic] })
await consumer.run({
  eachMessage: async ({ message }) => {
    if (count >= max) return
    const value = message.value?.toString('utf8') ?? ''
    process.stdout.write(values.key === true ? `${message.key?.toString('utf8') ?? ''}\t${value}\n` : `${value}\n`)
    if (++count >= max) void stop()
  },
})
