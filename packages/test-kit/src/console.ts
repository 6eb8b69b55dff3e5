import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { TEST_BROKERS } from './kafka.js'
import { ROOT } from './process.js'

export interface ToolRun { code: number | null, stdout: string, stderr: string }

/** Runs pagestream-produce or pagestream-consume (services/console/dist) against the test broker. */
export function runConsoleTool (tool: 'produce' | 'consume', args: string[], stdin = ''): Promise<ToolRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'services', 'console', 'dist', `${tool}.js`), ...args], {
      env: { ...process.env, KAFKA_BROKERS: TEST_BROKERS },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}
