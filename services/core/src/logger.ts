import type { LoggerOptions } from 'pino'

/** Paths that may hold credentials in anything we log: configs, headers, client settings. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'config.KAFKA_SASL_PASSWORD',
  '*.password',
  '*["sasl.password"]',
  '*.KAFKA_SASL_PASSWORD',
]

export function loggerOptions (level: string, pretty = process.stdout.isTTY === true): LoggerOptions {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(pretty
      ? {
          transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
        }
      : {}),
  }
}
