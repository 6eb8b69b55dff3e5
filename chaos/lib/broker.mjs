// The drills' own broker: deploy/local/broker.sh on ports of its own, with a pid the broker drill can SIGKILL.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** @param {string} root the repository @param {{ port: number, controllerPort: number, data: string }} where */
export function localBroker (root, { port, controllerPort, data }) {
  const script = join(root, 'deploy', 'local', 'broker.sh')
  const env = {
    ...process.env, KAFKA_PORT: String(port), CONTROLLER_PORT: String(controllerPort), BROKER_DATA: data,
  }
  const pid = async () => Number((await readFile(join(data, 'broker.pid'), 'utf8')).trim())
  return {
    brokers: `localhost:${port}`,
    env: { CHAOS_KAFKA_PORT: String(port), CHAOS_CONTROLLER_PORT: String(controllerPort), CHAOS_BROKER_DATA: data },
    up: async () => { await run(script, ['up'], { env }) },
    down: async () => { await run(script, ['down'], { env }) },
    /** SIGKILL, no warning: returns once the process is gone. */
    async kill () {
      const victim = await pid()
      process.kill(victim, 'SIGKILL')
      while (alive(victim)) await new Promise((resolve) => setTimeout(resolve, 20))
    },
  }
}

/** The broker the runner started, as the drills (a child process) see it. */
export function brokerFromEnv (root) {
  const { CHAOS_KAFKA_PORT: port, CHAOS_CONTROLLER_PORT: controllerPort, CHAOS_BROKER_DATA: data } = process.env
  if (port === undefined || controllerPort === undefined || data === undefined) {
    throw new Error('CHAOS_KAFKA_PORT, CHAOS_CONTROLLER_PORT and CHAOS_BROKER_DATA are set by chaos/run.mjs')
  }
  return localBroker(root, { port: Number(port), controllerPort: Number(controllerPort), data })
}

function alive (pid) {
  try { process.kill(pid, 0); return true } catch { return false }
}
