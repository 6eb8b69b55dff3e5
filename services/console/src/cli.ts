import { type ParseArgsConfig, parseArgs } from 'node:util'
import pino from 'pino'
import { ConfigError, commonConfig, createKafkaClient, loadConfig, type KafkaClient } from '@pagestream/core'

export interface Cli { topic: string, values: Record<string, string | boolean | undefined>, kafka: KafkaClient }

/** Arguments, help and the broker connection shared by both console tools (KAFKA_* variables as for the roles). */
export function startCli (usage: string, options: NonNullable<ParseArgsConfig['options']>): Cli {
  const parsed = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true })
  const values = parsed.values as Cli['values']
  const positionals = parsed.positionals
  if (values.help === true || positionals.length !== 1) {
    const brokers = 'Broker settings come from KAFKA_BROKERS (default localhost:9092) ' +
      'and the other KAFKA_* variables of the roles.'
    process.stderr.write(`${usage}\n\n${brokers}\n`)
    process.exit(values.help === true ? 0 : 2)
  }
  let config
  try {
    config = loadConfig(commonConfig('console', 0))
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(`${err.message}\n`); process.exit(2) }
    throw err
  }
  const log = pino({ level: 'warn' }, pino.destination(2))
  return { topic: positionals[0] as string, values, kafka: createKafkaClient(config, log) }
}
