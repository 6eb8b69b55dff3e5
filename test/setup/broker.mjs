// Starts (tap "before") or stops (tap "after") the one broker the whole test run shares.
// PAGESTREAM_TEST_BROKERS=host:port reuses a running broker instead and starts nothing.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const env = { ...process.env, KAFKA_PORT: process.env.PAGESTREAM_TEST_KAFKA_PORT ?? '39092' }
const marker = join(root, '.tap', `broker-started-by-tests-${env.KAFKA_PORT}`)
const script = join(root, 'deploy', 'local', 'broker.sh')

export function brokerUp () {
  if (process.env.PAGESTREAM_TEST_BROKERS) {
    console.error(`# tests use the broker at ${process.env.PAGESTREAM_TEST_BROKERS}`)
    return
  }
  const started = Date.now()
  execFileSync(script, ['up'], { env, stdio: 'inherit' })
  mkdirSync(dirname(marker), { recursive: true })
  writeFileSync(marker, env.KAFKA_PORT)
  console.error(`# test broker on localhost:${env.KAFKA_PORT} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

export function brokerDown () {
  if (process.env.PAGESTREAM_TEST_BROKERS || !existsSync(marker)) return
  execFileSync(script, ['down'], { env, stdio: 'inherit' })
  rmSync(marker)
}
