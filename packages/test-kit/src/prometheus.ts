import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { stringify } from 'yaml'
import { ROOT, freePort } from './process.js'
import type { Teardown } from './teardown.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)

let folder: Promise<string> | undefined

/** The folder of prometheus and promtool, built once per version by deploy/local/setup.sh from the Go module proxy. */
export function prometheusFolder (): Promise<string> {
  folder ??= run(join(ROOT, 'deploy', 'local', 'setup.sh'), ['prometheus'], { maxBuffer: 16 << 20, timeout: 3_600_000 })
    .then(({ stdout }) => stdout.trim().split('\n').pop() ?? '')
  return folder
}

/** One scrape job: its name (the `job` label) and its targets with the labels they get. */
export interface ScrapeJob { job: string, targets: string[], labels?: Record<string, string> }

export interface PrometheusOptions {
  jobs: ScrapeJob[]
  /** Rule groups, as in a rule file or a PrometheusRule's spec.groups. */
  ruleGroups?: unknown[]
  /** Scrape and rule evaluation interval, e.g. `1s`. */
  interval?: string
}

/** One series of an instant or range query. */
export interface Series { metric: Record<string, string>, value?: [number, string], values?: Array<[number, string]> }

export interface AlertState { labels: Record<string, string>, state: 'pending' | 'firing', value: string }
export interface RuleState { name: string, type: string, health: string, lastError?: string, state?: string }

export interface RunningPrometheus {
  url: string
  /** Instant query: the result vector (a scalar comes back as one series without labels). */
  query(expr: string): Promise<Series[]>
  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<Series[]>
  alerts(): Promise<AlertState[]>
  rules(): Promise<RuleState[]>
  targets(): Promise<Array<{ labels: Record<string, string>, health: string, lastError: string }>>
}

interface ApiAnswer<T> { status: 'success' | 'error', data: T, error?: string }

/** A real Prometheus scraping the given targets and evaluating the given rules, stopped and removed at teardown. */
export async function startPrometheus (t: Teardown, options: PrometheusOptions): Promise<RunningPrometheus> {
  const bin = join(await prometheusFolder(), 'prometheus')
  const dir = mkdtempSync(join(tmpdir(), 'pagestream-prometheus-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const interval = options.interval ?? '1s'
  const ruleFiles: string[] = []
  if (options.ruleGroups !== undefined) {
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: options.ruleGroups }))
    ruleFiles.push(join(dir, 'rules.yaml'))
  }
  writeFileSync(join(dir, 'prometheus.yaml'), stringify({
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: ruleFiles,
    scrape_configs: options.jobs.map(({ job, targets, labels }) => ({
      job_name: job, static_configs: [{ targets, labels: labels ?? {} }],
    })),
  }))
  const port = await freePort()
  const child = spawn(bin, [
    `--config.file=${join(dir, 'prometheus.yaml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  const output: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => { output.push(chunk.toString('utf8')) })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  })
  const url = `http://127.0.0.1:${port}`
  const died = exited.then(() => { throw new Error(`prometheus exited at start:\n${output.join('').slice(-2000)}`) })
  await Promise.race([
    waitFor('prometheus to be ready', async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok, 60_000),
    died,
  ])
  died.catch(() => {})

  async function api<T> (path: string, params: Record<string, string> = {}): Promise<T> {
    const response = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params).toString()}`)
    const answer = await response.json() as ApiAnswer<T>
    if (answer.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${answer.error}`)
    return answer.data
  }
  const vector = (data: { resultType: string, result: unknown }): Series[] =>
    data.resultType === 'scalar' ? [{ metric: {}, value: data.result as [number, string] }] : data.result as Series[]

  return {
    url,
    query: async (expr) => vector(await api('query', { query: expr })),
    queryRange: async (expr, start, end, step) => vector(await api('query_range', {
      query: expr, start: String(start), end: String(end), step: String(step),
    })),
    alerts: async () => (await api<{ alerts: AlertState[] }>('alerts')).alerts,
    rules: async () => (await api<{ groups: Array<{ rules: RuleState[] }> }>('rules')).groups.flatMap((g) => g.rules),
    targets: async () => (await api<{
      activeTargets: Array<{
        labels: Record<string, string>, health: string, lastError: string
      }>
    }>('targets')).activeTargets,
  }
}
