import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'
import { ROOT } from './process.js'

const run = promisify(execFile)

export const CHART = join(ROOT, 'charts', 'pagestream')
/** The Kubernetes version the chart is rendered for and validated against (see kube-schema.ts). */
export const KUBE_VERSION = '1.33.5'

/** A rendered Kubernetes object, loosely typed: tests read what they assert on. */
export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  [field: string]: any
}

let binary: Promise<string> | undefined

/** helm from the Go module proxy, installed once into ~/.cache/pagestream by deploy/local/setup.sh. */
export function helmBinary (): Promise<string> {
  binary ??= run(join(ROOT, 'deploy', 'local', 'setup.sh'), ['helm'], { maxBuffer: 16 << 20, timeout: 600_000 })
    .then(({ stdout }) => stdout.trim().split('\n').pop() ?? '')
  return binary
}

export interface HelmResult { code: number, stdout: string, stderr: string }

export async function helm (args: string[]): Promise<HelmResult> {
  const bin = await helmBinary()
  try {
    const { stdout, stderr } = await run(bin, args, { maxBuffer: 64 << 20, timeout: 120_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code?: number, stdout?: string, stderr?: string }
    const code = typeof failed.code === 'number' ? failed.code : 1
    return { code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? String(err) }
  }
}

/** The ci/*-values.yaml scenarios, by name (`default`, `kind`, ...). */
export function scenarios (): Array<{ name: string, file: string }> {
  return readdirSync(join(CHART, 'ci'))
    .filter((file) => file.endsWith('-values.yaml'))
    .sort()
    .map((file) => ({ name: file.replace(/-values\.yaml$/, ''), file: join(CHART, 'ci', file) }))
}

export interface RenderOptions { values?: string[], set?: string[], release?: string, namespace?: string }

function valueArgs (options: RenderOptions): string[] {
  return [
    ...(options.values ?? []).flatMap((file) => ['--values', file]),
    ...(options.set ?? []).flatMap((pair) => ['--set', pair]),
  ]
}

/** `helm template` of the chart; throws with helm's message when rendering fails. */
export async function renderChart (options: RenderOptions = {}): Promise<KubeObject[]> {
  const result = await helm(['template', options.release ?? 'demo', CHART,
    '--namespace', options.namespace ?? 'pagestream',
    '--kube-version', KUBE_VERSION, ...valueArgs(options)])
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr.trim()}`)
  return parseManifests(result.stdout)
}

/** NOTES.txt as `helm install` prints it; a client-only dry run, no cluster needed. */
export async function renderNotes (options: RenderOptions = {}): Promise<string> {
  const result = await helm(['install', options.release ?? 'demo', CHART,
    '--namespace', options.namespace ?? 'pagestream',
    '--dry-run=client', ...valueArgs(options)])
  if (result.code !== 0) throw new Error(`helm install --dry-run failed: ${result.stderr.trim()}`)
  const notes = result.stdout.split(/^NOTES:$/m)[1]
  if (notes === undefined) throw new Error('helm install --dry-run printed no NOTES')
  return notes
}

export function parseManifests (text: string): KubeObject[] {
  return parseAllDocuments(text).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`rendered YAML does not parse: ${document.errors[0]?.message}`)
    const object = document.toJS() as KubeObject | null
    return object === null ? [] : [object]
  })
}

export function find (objects: KubeObject[], kind: string, name?: string): KubeObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
}

/** The one object of this kind and name, or a failure that says which is missing. */
export function one (objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = find(objects, kind, name)
  if (found.length !== 1) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')
    throw new Error(`expected one ${kind} ${name}, found ${found.length} (have: ${have})`)
  }
  return found[0] as KubeObject
}
