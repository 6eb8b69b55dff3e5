import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import type { KubeObject } from './helm.js'
import type { KubeValidator } from './kube-schema.js'
import { schemaProblem } from './schema-problem.js'

const run = promisify(execFile)

/** The prometheus-operator release whose CRDs the chart's ServiceMonitor and PrometheusRule must satisfy. */
export const PROMETHEUS_OPERATOR_VERSION = '0.85.0'
const MODULE = `github.com/prometheus-operator/prometheus-operator@v${PROMETHEUS_OPERATOR_VERSION}`
const CRDS = ['servicemonitors', 'podmonitors', 'prometheusrules']
const cache = process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream')
const bundlePath = join(cache, `prometheus-operator-crds-v${PROMETHEUS_OPERATOR_VERSION}.json`)

type Schema = Record<string, unknown>
interface CrdVersion { name: string, schema: { openAPIV3Schema: Schema } }
interface Crd { spec: { group: string, names: { kind: string }, versions: CrdVersion[] } }

/** Strict like the API server's field validation: a field the CRD does not declare is an error. */
function closeObjects (schema: unknown): void {
  if (Array.isArray(schema)) { schema.forEach(closeObjects); return }
  if (schema === null || typeof schema !== 'object') return
  const node = schema as Schema
  const preserves = node['x-kubernetes-preserve-unknown-fields'] === true
  if (node.properties !== undefined && node.additionalProperties === undefined && !preserves) {
    node.additionalProperties = false
  }
  Object.values(node).forEach(closeObjects)
}

/**
 * The CRDs' OpenAPI schemas by `<group>/<version>/<kind>`, from the operator's Go module
 * (example/prometheus-operator-crd) through the Go module proxy once, then from the cache, offline.
 */
async function loadBundle (): Promise<Record<string, Schema>> {
  if (existsSync(bundlePath)) return JSON.parse(readFileSync(bundlePath, 'utf8')) as Record<string, Schema>
  const { stdout } = await run('go', ['mod', 'download', '-json', MODULE], { cwd: tmpdir(), timeout: 900_000 })
  const { Dir: dir, Error: error } = JSON.parse(stdout) as { Dir?: string, Error?: string }
  if (dir === undefined) throw new Error(`go mod download ${MODULE}: ${error ?? 'no directory'}`)
  const bundle: Record<string, Schema> = {}
  for (const plural of CRDS) {
    const file = join(dir, 'example', 'prometheus-operator-crd', `monitoring.coreos.com_${plural}.yaml`)
    const crd = parse(readFileSync(file, 'utf8')) as Crd
    for (const version of crd.spec.versions) {
      bundle[`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`] = version.schema.openAPIV3Schema
    }
  }
  closeObjects(bundle)
  mkdirSync(cache, { recursive: true })
  const partial = `${bundlePath}.${process.pid}.tmp`
  writeFileSync(partial, JSON.stringify(bundle))
  renameSync(partial, bundlePath)
  return bundle
}

/** The CRDs' patterns are Go RE2: its `(?i)` (only ever at the start here) is JavaScript's `i` flag. */
function goRegExp (pattern: string, flags: string): RegExp {
  return pattern.includes('(?i)') ? new RegExp(pattern.replaceAll('(?i)', ''), `${flags}i`) : new RegExp(pattern, flags)
}
goRegExp.code = 'new RegExp'

/** Validates ServiceMonitor, PodMonitor and PrometheusRule objects against the pinned operator's CRDs. */
export async function monitoringValidator (): Promise<KubeValidator> {
  const bundle = await loadBundle()
  const ajv = new Ajv({ strict: false, allErrors: true, code: { regExp: goRegExp } })
  return {
    version: PROMETHEUS_OPERATOR_VERSION,
    validate (object: KubeObject) {
      const key = `${object.apiVersion}/${object.kind}`
      const schema = bundle[key]
      if (schema === undefined) return [`${key} is not a kind of prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}`]
      const where = `${object.kind}/${object.metadata?.name}`
      const validate = ajv.getSchema(key) ?? ajv.addSchema(schema, key).getSchema(key)
      if (validate === undefined || validate(object)) return []
      return (validate.errors ?? []).map((e) => `${where}: ${schemaProblem(e)}`)
    },
  }
}
