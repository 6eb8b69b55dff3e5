// `make up` picks compose or local processes by `deploy/local/docker.sh mode`, asked of the real Docker engine:
// compose only when the engine answers and every image of the compose file is here or can be pulled.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { uniqueName } from '@pagestream/test-kit'
import { ROOT } from '@pagestream/test-kit'

const run = promisify(execFile)
const script = join(ROOT, 'deploy/local/docker.sh')
const folder = mkdtempSync(join(tmpdir(), 'pagestream-mode-'))
t.teardown(() => rmSync(folder, { recursive: true, force: true }))

/** The mode docker.sh picks, with redpanda-compose.yml's third-party images replaced by `image`. */
async function mode (image: string, env: NodeJS.ProcessEnv = {}): Promise<{ mode: string, reason: string }> {
  const override = join(folder, `${uniqueName('override')}.yml`)
  const services = ['redpanda', 'topics', 'console'].map((s) => `  ${s}:\n    image: ${image}\n`).join('')
  writeFileSync(override, `services:\n${services}`)
  const { stdout, stderr } = await run(script, ['mode'], {
    env: { ...process.env, PAGESTREAM_COMPOSE_OVERRIDES: override, PULL_TIMEOUT: '120', ...env },
  })
  return { mode: stdout.trim(), reason: stderr.trim() }
}

let present = ''
t.before(async () => {
  await run(join(ROOT, 'deploy/local/setup.sh'), ['docker'])
  present = (await run(join(ROOT, 'deploy/local/base-images.sh'), ['debian'])).stdout.trim()
})

t.test('every image is here: compose', async (t) => {
  const tag = `${uniqueName('pagestream-test/present').toLowerCase()}:1`
  await run('docker', ['tag', present, tag])
  t.teardown(() => run('docker', ['rmi', tag]))
  t.same(await mode(tag), { mode: 'docker', reason: '' })
})

t.test('the engine answers but an image can be neither found nor pulled: local processes, and one line says why',
  async (t) => {
    const absent = `${uniqueName('pagestream-test/absent').toLowerCase()}:1`
    const { mode: chosen, reason } = await mode(absent)
    t.equal(chosen, 'local')
    const why = `docker: ${absent} can be neither found here nor pulled; running local processes instead of compose`
    t.equal(reason, why)
  })

t.test('no engine answers: local processes, and one line says why', async (t) => {
  const { mode: chosen, reason } = await mode(present, { DOCKER_HOST: `unix://${join(folder, 'no-docker.sock')}` })
  t.equal(chosen, 'local')
  t.equal(reason, 'docker: no Docker engine with compose v2 answers; running local processes')
})
