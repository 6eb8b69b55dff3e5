// A small closed-loop HTTP load generator (no dependency): `connections` keep-alive sockets, each sending
// its next request as soon as the previous answer is read, for a fixed time. Counts 2xx and the rest apart.
import http from 'node:http'
import { quantile } from './row.mjs'

/**
 * @param {{ url: string, method?: string, path: (n: number) => string, body?: Buffer,
 *   connections: number, durationMs: number }} options
 * @returns {Promise<{ ok: number, failed: number, statuses: Record<string, number>, perSecond: number,
 *   p50: number, p99: number }>}
 */
export async function hammer ({ url, method = 'GET', path, body, connections, durationMs }) {
  const { hostname, port } = new URL(url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': body.length }
  const latencies = []
  const statuses = {}
  let ok = 0
  let sent = 0
  const started = performance.now()
  const end = started + durationMs
  const one = () => new Promise((resolve) => {
    const at = performance.now()
    const request = http.request({ agent, hostname, port, method, path: path(sent++), headers }, (response) => {
      response.on('data', () => {})
      response.on('end', () => {
        const status = response.statusCode ?? 0
        statuses[status] = (statuses[status] ?? 0) + 1
        if (status >= 200 && status < 300) {
          ok += 1
          latencies.push(performance.now() - at)
        }
        resolve()
      })
    })
    request.on('error', (err) => {
      statuses[err.code ?? 'error'] = (statuses[err.code ?? 'error'] ?? 0) + 1
      resolve()
    })
    request.end(body)
  })
  const connection = async () => { while (performance.now() < end) await one() }
  await Promise.all(Array.from({ length: connections }, connection))
  const seconds = (performance.now() - started) / 1000
  agent.destroy()
  const failed = Object.entries(statuses).reduce((n, [status, count]) => n + (/^2\d\d$/.test(status) ? 0 : count), 0)
  return {
    ok,
    failed,
    statuses,
    perSecond: ok / seconds,
    p50: latencies.length > 0 ? quantile(latencies, 0.5) : NaN,
    p99: latencies.length > 0 ? quantile(latencies, 0.99) : NaN,
  }
}
