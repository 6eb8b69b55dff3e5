// Runs every bench/*.bench.mjs in turn against the local broker (make bench starts it).
// Each benchmark measures two variants side by side in one run and reports their ratio;
// it exits non-zero when the ratio misses its goal, so `make bench` fails too.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv[2]
let failed = 0
for (const file of readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).sort()) {
  if (only !== undefined && !file.includes(only)) continue
  console.log(`\n== ${file}`)
  const result = spawnSync(process.execPath, [join(here, file)], { stdio: 'inherit' })
  if (result.status !== 0) failed++
}
process.exitCode = failed > 0 ? 1 : 0
