// What rows share to run pagestream as users do: roles as processes (node dist/server.js) on free ports,
// waited for until ready, stopped with SIGTERM; Kafka clients of the bench itself; resident memory.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { commonConfig, createKafkaClient, loadConfig } from '@pagestream/core'
import pino from 'pino'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** A short tag unique to this run, for topic and group names. */
export const RUN = Date.now().toString(36)

export function freePort () {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => { const { port } = probe.address(); probe.close(() => resolve(port)) })
  })
}

/** The bench's own Kafka client, on KAFKA_BROKERS like the roles. */
export function benchKafka () {
  return createKafkaClient(loadConfig(commonConfig('bench', 0)), pino({ level: 'error' }))
}

async function waitReady (url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited (${child.exitCode}) before it was ready`)
    const ready = await fetch(`${url}/health/ready`).then((response) => response.status === 200, () => false)
    if (ready) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`)
}

/**
 * Runs a script (a role's dist/server.js or an anchor) with HTTP_PORT/HTTP_HOST set, waits for
 * /health/ready, and returns its url, pid and stop(). Its stderr goes to ours, so a crash says why.
 */
export async function startProcess (script, env = {}, { readyTimeoutMs = 60_000, nodeArgs = [] } = {}) {
  const port = await freePort()
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, ...env, HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  try {
    await waitReady(url, child, readyTimeoutMs)
  } catch (err) {
    await stop()
    throw err
  }
  return { url, pid: child.pid, stop }
}

/** A role as production runs it: services/<role>/dist/server.js. */
export function startRole (role, env = {}, options) {
  return startProcess(join(ROOT, 'services', role, 'dist', 'server.js'), env, options)
}

/** Resident set size of a process in bytes (Linux). */
export function rssBytes (pid) {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match?.[1] ?? 0) * 1024
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
