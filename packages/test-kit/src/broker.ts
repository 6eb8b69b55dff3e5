import { execFile } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, freePort } from './process.js'
import type { Teardown } from './teardown.js'

const run = promisify(execFile)
const script = join(ROOT, 'deploy', 'local', 'broker.sh')

export interface PrivateBroker {
  brokers: string
  /** Stops the broker, keeping its data. */
  stop(): Promise<void>
  /** Starts it again on the same port and data. */
  start(): Promise<void>
}

/** A broker of this test's own (for tests that stop it), on free ports, removed at teardown. */
export async function privateBroker (t: Teardown): Promise<PrivateBroker> {
  const port = await freePort()
  const env = {
    ...process.env,
    KAFKA_PORT: String(port),
    CONTROLLER_PORT: String(await freePort()),
    ADMIN_PORT: String(await freePort()),
    BROKER_DATA: await mkdtemp(join(tmpdir(), 'pagestream-broker-')),
  }
  const broker: PrivateBroker = {
    brokers: `localhost:${port}`,
    stop: async () => { await run(script, ['stop'], { env }) },
    start: async () => { await run(script, ['up'], { env }) },
  }
  await broker.start()
  t.teardown(() => run(script, ['down'], { env }))
  return broker
}
