import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { type IncomingMessage, type Server, createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT, freePort } from './process.js'
import type { Teardown } from './teardown.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)

/** One span as the collector exported it, flattened. */
export interface ExportedSpan {
  service: string
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  /** OTLP's numbers: 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: number
  attributes: Record<string, string | number | boolean>
  links: Array<{ traceId: string, spanId: string }>
}

export interface RunningCollector {
  /** OTEL_EXPORTER_OTLP_ENDPOINT for the roles: the collector's OTLP/HTTP receiver. */
  endpoint: string
  /** Every span the collector has exported so far. */
  spans(): ExportedSpan[]
  stop(): Promise<void>
}

/** The collector built from the Go module proxy by `deploy/local/setup.sh otelcol` (minutes once, then cached). */
export async function otelcolBinary (): Promise<string> {
  const { stdout } = await run(join(ROOT, 'deploy', 'local', 'setup.sh'), ['otelcol'], {
    maxBuffer: 16 << 20, timeout: 1_800_000,
  })
  return stdout.trim()
}

type AnyValue = { stringValue?: string, intValue?: string | number, boolValue?: boolean, doubleValue?: number }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind?: number
  status?: { code?: number }
  attributes?: Array<{ key: string, value: AnyValue }>
  links?: Array<{ traceId: string, spanId: string }>
}
interface OtlpTraces {
  resourceSpans?: Array<{
    resource?: { attributes?: Array<{ key: string, value: AnyValue }> }
    scopeSpans?: Array<{ spans?: OtlpSpan[] }>
  }>
}

function plain (value: AnyValue): string | number | boolean {
  if (value.intValue !== undefined) return Number(value.intValue)
  return value.stringValue ?? value.boolValue ?? value.doubleValue ?? ''
}

function attributes (list: Array<{ key: string, value: AnyValue }> = []): Record<string, string | number | boolean> {
  return Object.fromEntries(list.map(({ key, value }) => [key, plain(value)]))
}

function flatten (traces: OtlpTraces): ExportedSpan[] {
  return (traces.resourceSpans ?? []).flatMap((resource) => {
    const service = String(attributes(resource.resource?.attributes)['service.name'] ?? '')
    return (resource.scopeSpans ?? []).flatMap((scope) => (scope.spans ?? []).map((span) => ({
      service,
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId ?? '',
      name: span.name,
      kind: span.kind ?? 0,
      status: span.status?.code ?? 0,
      attributes: attributes(span.attributes),
      links: (span.links ?? []).map(({ traceId, spanId }) => ({ traceId, spanId })),
    })))
  })
}

async function body (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * A real OpenTelemetry Collector: OTLP/HTTP in (what the roles send, protobuf), OTLP/HTTP JSON out to
 * a sink in this process, so the test reads what the collector received and passed on.
 */
export async function startCollector (t: Teardown): Promise<RunningCollector> {
  const binary = await otelcolBinary()
  const exported: ExportedSpan[] = []
  const sink: Server = createServer((request, response) => {
    body(request).then((text) => {
      exported.push(...flatten(JSON.parse(text) as OtlpTraces))
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    }, () => response.writeHead(400).end())
  })
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  const sinkPort = (sink.address() as { port: number }).port
  const port = await freePort()
  const folder = await mkdtemp(join(tmpdir(), 'otelcol-'))
  const config = join(folder, 'config.yaml')
  await writeFile(config, [
    'receivers:',
    '  otlp:',
    '    protocols:',
    `      http: { endpoint: "127.0.0.1:${port}" }`,
    'exporters:',
    '  otlp_http:',
    `    traces_endpoint: "http://127.0.0.1:${sinkPort}/v1/traces"`,
    '    encoding: json',
    '    compression: none',
    'service:',
    // no internal metrics server: its fixed port would collide with another collector on this machine
    '  telemetry: { metrics: { level: none }, logs: { level: warn } }',
    '  pipelines:',
    '    traces: { receivers: [otlp], exporters: [otlp_http] }',
  ].join('\n'))
  const output: string[] = []
  const child: ChildProcess = spawn(binary, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  const collect = (chunk: Buffer) => { output.push(chunk.toString('utf8')) }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    // the collector's exporter keeps its connections alive: close them, or close() waits for ever
    sink.closeAllConnections()
    await new Promise<void>((resolve) => sink.close(() => resolve()))
    await rm(folder, { recursive: true, force: true })
  }
  t.teardown(stop)
  const endpoint = `http://127.0.0.1:${port}`
  await waitFor(`the collector to answer on ${endpoint} (output: ${output.join('').slice(-500)})`, async () => {
    if (child.exitCode !== null) throw new Error(`the collector exited: ${output.join('').slice(-2000)}`)
    // an empty export is a valid request: 200 once the receiver is up
    const response = await fetch(`${endpoint}/v1/traces`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    }).catch(() => undefined)
    return response?.status === 200
  }, 30_000, 100)
  return { endpoint, spans: () => [...exported], stop }
}
