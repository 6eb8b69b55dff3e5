import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TEST_BROKERS } from './kafka.js'
import { waitFor } from './wait.js'
import type { Teardown } from './teardown.js'

/** The repository root (this file is packages/test-kit/src/process.ts). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

export interface RunningRole {
  url: string
  port: number
  child: ChildProcess
  output: string[]
  /** Resolves with the exit code (or signal) once the process ended. */
  exited: Promise<number | string>
  stop(signal?: NodeJS.Signals): Promise<number | string>
  /** Parsed JSON log lines. */
  logs(): Array<Record<string, unknown>>
}

/** Runs a role exactly as production does (node dist/server.js) and waits for /health/ready. */
export async function startRole (
  t: Teardown, role: string, env: Record<string, string> = {},
  options: { waitReady?: boolean, readyTimeoutMs?: number } = {}
): Promise<RunningRole> {
  const port = Number(env.HTTP_PORT ?? await freePort())
  const child = spawn(process.execPath, [join(ROOT, 'services', role, 'dist', 'server.js')], {
    env: {
      ...process.env,
      KAFKA_BROKERS: TEST_BROKERS,
      LOG_LEVEL: 'info',
      ...env,
      HTTP_PORT: String(port),
      HTTP_HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const collect = (chunk: Buffer) => { output.push(...chunk.toString('utf8').split('\n').filter(Boolean)) }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  const running: RunningRole = {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    output,
    exited,
    async stop (signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
    logs () {
      return output.flatMap((line) => {
        try { return [JSON.parse(line) as Record<string, unknown>] } catch { return [] }
      })
    },
  }
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  if (options.waitReady !== false) {
    const ready = waitFor(`${role} to be ready on ${running.url}`, async () => {
      const response = await fetch(`${running.url}/health/ready`).catch(() => undefined)
      return response?.status === 200
    }, options.readyTimeoutMs ?? 30_000, 100)
    const died = exited.then((code) => {
      throw new Error(`${role} exited with ${code} before it was ready:\n${output.slice(-8).join('\n')}`)
    })
    await Promise.race([ready, died])
    died.catch(() => {})
  }
  return running
}
