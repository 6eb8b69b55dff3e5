import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { KUBE_VERSION, type KubeObject } from './helm.js'
import { schemaProblem } from './schema-problem.js'

const run = promisify(execFile)
// ajv-formats is CommonJS with a default export
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

const MODULE = `k8s.io/kubernetes@v${KUBE_VERSION}`
const cache = process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream')
const bundlePath = join(cache, `kubernetes-openapi-v${KUBE_VERSION}.json`)

type Schema = Record<string, unknown>
interface Bundle { version: string, kinds: Record<string, string>, schemas: Record<string, Schema> }

/** Strict like kubectl's field validation: a field the API does not know is an error, not ignored. */
function closeObjects (schema: unknown): void {
  if (Array.isArray(schema)) { schema.forEach(closeObjects); return }
  if (schema === null || typeof schema !== 'object') return
  const node = schema as Schema
  if (node.properties !== undefined && node.additionalProperties === undefined) node.additionalProperties = false
  Object.values(node).forEach(closeObjects)
}

/**
 * The OpenAPI v3 schemas of the pinned Kubernetes, from the k8s.io/kubernetes Go module
 * (api/openapi-spec/v3). Fetched once through the Go module proxy, then bundled into the cache;
 * later runs read only the bundle, offline.
 */
async function loadBundle (): Promise<Bundle> {
  if (existsSync(bundlePath)) return JSON.parse(readFileSync(bundlePath, 'utf8')) as Bundle
  const download = ['mod', 'download', '-json', MODULE]
  const { stdout } = await run('go', download, { cwd: tmpdir(), maxBuffer: 4 << 20, timeout: 900_000 })
  const { Dir: dir, Error: error } = JSON.parse(stdout) as { Dir?: string, Error?: string }
  if (dir === undefined) throw new Error(`go mod download ${MODULE}: ${error ?? 'no directory'}`)
  const specDir = join(dir, 'api', 'openapi-spec', 'v3')
  const bundle: Bundle = { version: KUBE_VERSION, kinds: {}, schemas: {} }
  for (const file of readdirSync(specDir).filter((f) => f.endsWith('.json'))) {
    type OpenApi = { components?: { schemas?: Record<string, Schema> } }
    const spec = JSON.parse(readFileSync(join(specDir, file), 'utf8')) as OpenApi
    for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
      bundle.schemas[name] = schema
      type GroupVersionKind = { group: string, version: string, kind: string }
      const kinds = schema['x-kubernetes-group-version-kind'] as GroupVersionKind[] | undefined
      // a kind's own schema is the one whose properties include apiVersion and kind (DeleteOptions lists every group)
      const properties = schema.properties as Schema | undefined
      if (kinds?.length === 1 && properties?.kind !== undefined && properties.apiVersion !== undefined) {
        const [gvk] = kinds
        if (gvk !== undefined) bundle.kinds[`${gvk.group ? `${gvk.group}/` : ''}${gvk.version}/${gvk.kind}`] = name
      }
    }
  }
  closeObjects(bundle.schemas)
  mkdirSync(cache, { recursive: true })
  const partial = `${bundlePath}.${process.pid}.tmp`
  writeFileSync(partial, JSON.stringify(bundle))
  renameSync(partial, bundlePath)
  return bundle
}

export interface KubeValidator {
  version: string
  /** Problems of one object against its kind's schema; empty when valid. */
  validate(object: KubeObject): string[]
}

export async function kubernetesValidator (): Promise<KubeValidator> {
  const bundle = await loadBundle()
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats(ajv)
  ajv.addFormat('int-or-string', true)
  ajv.addSchema({ $id: 'k8s', components: { schemas: bundle.schemas } })
  const compiled = new Map<string, ValidateFunction>()
  return {
    version: bundle.version,
    validate (object) {
      const key = `${object.apiVersion}/${object.kind}`
      const name = bundle.kinds[key]
      if (name === undefined) return [`${key} is not a kind of Kubernetes ${bundle.version}`]
      let validator = compiled.get(name)
      if (validator === undefined) {
        validator = ajv.compile({ $ref: `k8s#/components/schemas/${name}` })
        compiled.set(name, validator)
      }
      const where = `${object.kind}/${object.metadata?.name}`
      if (validator(object)) return []
      return (validator.errors ?? []).map((e) => `${where}: ${schemaProblem(e)}`)
    },
  }
}
