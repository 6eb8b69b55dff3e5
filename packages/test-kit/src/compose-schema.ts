import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { schemaProblem } from './schema-problem.js'

const run = promisify(execFile)

/** The Compose Specification schema that docker compose itself loads (compose-go), pinned. */
export const COMPOSE_GO_VERSION = 'v2.16.2'
const MODULE = `github.com/compose-spec/compose-go/v2@${COMPOSE_GO_VERSION}`
const cache = process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream')
const schemaPath = join(cache, `compose-spec-${COMPOSE_GO_VERSION}.json`)

/** Fetched once through the Go module proxy into the cache; offline afterwards. */
async function loadSchema (): Promise<Record<string, unknown>> {
  if (!existsSync(schemaPath)) {
    const download = ['mod', 'download', '-json', MODULE]
    const { stdout } = await run('go', download, { cwd: tmpdir(), maxBuffer: 4 << 20, timeout: 300_000 })
    const { Dir: dir, Error: error } = JSON.parse(stdout) as { Dir?: string, Error?: string }
    if (dir === undefined) throw new Error(`go mod download ${MODULE}: ${error ?? 'no directory'}`)
    mkdirSync(cache, { recursive: true })
    copyFileSync(join(dir, 'schema', 'compose-spec.json'), schemaPath)
  }
  return JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>
}

/** Problems of a parsed compose file against the Compose Specification; empty when valid. */
export async function composeValidator (): Promise<(document: unknown) => string[]> {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  const validate = ajv.compile(await loadSchema())
  return (document) => validate(document) ? [] : (validate.errors ?? []).map(schemaProblem)
}
