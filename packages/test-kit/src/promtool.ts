import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The Prometheus release (Go module version v0.<major><minor>.<patch>) whose promtool checks the rules. */
export const PROMETHEUS_MODULE_VERSION = 'v0.316.0'
const cache = process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream')
const gobin = join(cache, `promtool-${PROMETHEUS_MODULE_VERSION}`)

let binary: Promise<string> | undefined

/** promtool built from the Go module proxy once (minutes), then taken from the cache. */
export function promtoolBinary (): Promise<string> {
  binary ??= (async () => {
    const path = join(gobin, 'promtool')
    if (existsSync(path)) return path
    const module = `github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_MODULE_VERSION}`
    await run('go', ['install', module], {
      cwd: tmpdir(), env: { ...process.env, GOBIN: gobin }, maxBuffer: 16 << 20, timeout: 1_800_000,
    })
    return path
  })()
  return binary
}

/** `promtool check rules <file>`: exit code and output. */
export async function checkRules (file: string): Promise<{ code: number, output: string }> {
  const bin = await promtoolBinary()
  try {
    const { stdout, stderr } = await run(bin, ['check', 'rules', file], { timeout: 60_000 })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const failed = err as { code?: number, stdout?: string, stderr?: string }
    const code = typeof failed.code === 'number' ? failed.code : 1
    return { code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}
