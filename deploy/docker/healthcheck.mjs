// Docker HEALTHCHECK without curl: asks the role this container runs for /health/ready.
// The port: HTTP_PORT of the container (compose and the chart set it), otherwise the one
// entrypoint.sh gave the role, read from the role's process (PID 1, or its child under --init).
import { readFileSync, readdirSync } from 'node:fs'

function rolePort () {
  if (process.env.HTTP_PORT) return process.env.HTTP_PORT
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (!argv.some((arg) => /\/services\/[a-z]+\/dist\/server\.js$/.test(arg))) continue
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
      const port = environ.find((entry) => entry.startsWith('HTTP_PORT='))?.slice('HTTP_PORT='.length)
      if (port) return port
    } catch {
      // a process that ended while we looked
    }
  }
  return undefined
}

const port = rolePort()
if (!port) {
  console.error('healthcheck: no pagestream role runs in this container')
  process.exit(1)
}
try {
  const response = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(2500) })
  if (!response.ok) console.error(`healthcheck: /health/ready answered ${response.status}: ${await response.text()}`)
  process.exit(response.ok ? 0 : 1)
} catch (err) {
  console.error(`healthcheck: ${err.message}`)
  process.exit(1)
}
