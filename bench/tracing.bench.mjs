// Goal: tracing on keeps at least 0.8 of the producer's publish throughput with tracing off. On, every
// publish makes a server span and a send span, injects a traceparent and the batch processor exports
// to a real collector (built by deploy/local/setup.sh otelcol) on the same two cores: a fifth is the
// most an operator should pay on the hottest path before turning to sampling (OTEL_TRACES_SAMPLER).
// Two producer processes, identical but for OTEL_EXPORTER_OTLP_ENDPOINT, publish the same requests
// (GET /publish, CONCURRENCY at a time) in alternating rounds; events/s acknowledged per round.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { commonConfig, createKafkaClient, loadConfig } from '@pagestream/core'
import pino from 'pino'
import { emit, interleave, progress, ratioCheck } from './lib/row.mjs'

const ROUNDS = 6
const REQUESTS = 1_500
const CONCURRENCY = 16
const GOAL = 0.8

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const config = loadConfig(commonConfig('bench', 0))
const topic = `bench-tracing-${Date.now().toString(36)}`
const children = []

function freePort () {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1', () => { const { port } = probe.address(); probe.close(() => resolve(port)) })
  })
}

async function until (what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function start (command, args, env = {}) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}

/** The collector with a debug exporter that only counts: what a real pipeline costs the role, not a sink. */
async function startCollector (folder) {
  const binary = execFileSync(join(root, 'deploy', 'local', 'setup.sh'), ['otelcol'], { encoding: 'utf8' }).trim()
  const port = await freePort()
  const file = join(folder, 'otelcol.yaml')
  writeFileSync(file, [
    `receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:${port}" } } } }`,
    'exporters: { debug: { verbosity: basic } }',
    'service:',
    '  telemetry: { metrics: { level: none }, logs: { level: error } }',
    '  pipelines: { traces: { receivers: [otlp], exporters: [debug] } }',
  ].join('\n'))
  start(binary, ['--config', file])
  const endpoint = `http://127.0.0.1:${port}`
  await until('the collector', () => fetch(`${endpoint}/v1/traces`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
  }).then((r) => r.status === 200, () => false))
  return endpoint
}

async function startProducer (env) {
  const port = await freePort()
  start(process.execPath, [join(root, 'services', 'producer', 'dist', 'server.js')], {
    ...env, HTTP_PORT: String(port), PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '100000000', LOG_LEVEL: 'warn',
  })
  const url = `http://127.0.0.1:${port}`
  await until(`the producer on ${url}`, () => fetch(`${url}/health/ready`).then((r) => r.status === 200, () => false))
  return url
}

/** Events acknowledged per second: REQUESTS publishes, CONCURRENCY in flight. */
async function throughput (url, requests = REQUESTS) {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < requests) {
      next++
      const response = await fetch(`${url}/publish/${topic}/bench-page`)
      await response.arrayBuffer()
      if (response.status !== 200) throw new Error(`publish answered ${response.status}`)
    }
  }))
  return requests / ((performance.now() - started) / 1000)
}

const folder = mkdtempSync(join(tmpdir(), 'bench-tracing-'))
try {
  const endpoint = await startCollector(folder)
  const off = await startProducer({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })
  const on = await startProducer({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })
  progress('warming up both producers')
  await throughput(off, 300)
  await throughput(on, 300)
  const samples = await interleave(ROUNDS, { off: () => throughput(off), on: () => throughput(on) }, 'tracing')
  emit({
    id: 'tracing-overhead',
    title: `Tracing overhead: producer publish throughput, OTLP to a collector on vs off (${CONCURRENCY} in flight)`,
    measures: [
      { name: 'tracing off', unit: 'events/s', samples: samples.off },
      { name: 'tracing on (server + send span per event)', unit: 'events/s', samples: samples.on },
    ],
    checks: [ratioCheck('throughput on / off', samples.on, samples.off, { goal: GOAL })],
    notes: ['a ratio above 1 is noise: tracing cannot speed a publish up'],
  })
} finally {
  // producers first, so the traced one flushes its last spans to a collector still there
  for (const child of children.reverse()) {
    if (child.exitCode !== null) continue
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  rmSync(folder, { recursive: true, force: true })
  const kafka = createKafkaClient(config, pino({ level: 'error' }))
  const admin = kafka.admin()
  await admin.connect()
  await admin.deleteTopics({ topics: [topic] }).catch(() => {})
  await admin.disconnect()
}
