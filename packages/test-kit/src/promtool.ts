import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { prometheusFolder } from './prometheus.js'

const run = promisify(execFile)

/** `promtool check rules <file>`: exit code and output. */
export async function checkRules (file: string): Promise<{ code: number, output: string }> {
  const bin = join(await prometheusFolder(), 'promtool')
  try {
    const { stdout, stderr } = await run(bin, ['check', 'rules', file], { timeout: 60_000 })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const failed = err as { code?: number, stdout?: string, stderr?: string }
    const code = typeof failed.code === 'number' ? failed.code : 1
    return { code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}
