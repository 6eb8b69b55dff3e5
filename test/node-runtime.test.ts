// The tests run on the image's Node: `make` puts the Node that deploy/local/setup.sh runtime names first on PATH
// (the system's when it is 24 or newer, else Node 24 from the npm registry, cached), and node_modules is
// installed for that Node's ABI.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ROOT } from '@pagestream/test-kit'

const run = promisify(execFile)
const setup = join(ROOT, 'deploy/local/setup.sh')
const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0])
const systemPath = '/usr/local/bin:/usr/bin:/bin'

async function runtimeFor (path: string): Promise<string> {
  return (await run(setup, ['runtime'], { env: { ...process.env, PATH: path } })).stdout.trim()
}

t.test('this suite runs on Node 24 or newer, and node_modules was installed for its ABI', async (t) => {
  t.ok(major(process.version) >= 24, `running on ${process.version}`)
  const stamp = readFileSync(join(ROOT, 'node_modules', '.pagestream-installed'), 'utf8').trim()
  t.equal(stamp, `node ${process.version} abi ${process.versions.modules}`)
})

const systemNode = await run('sh', ['-c', 'command -v node'], { env: { ...process.env, PATH: systemPath } })
  .then(({ stdout }) => stdout.trim(), () => '')
const system = systemNode === '' ? '' : (await run(systemNode, ['--version'])).stdout.trim()
const skip = system === '' || major(system) >= 24 ? `the system's Node is ${system || 'missing'}` : false

t.test('a system Node older than 24: the cached Node 24 from the npm registry comes first', { skip }, async (t) => {
  const folder = await runtimeFor(systemPath)
  t.not(folder, dirname(systemNode), `not the system's ${system}`)
  const { stdout } = await run(join(folder, 'node'), ['--version'])
  t.equal(major(stdout.trim()), 24, `${folder}/node is ${stdout.trim()}`)
})

t.test('a Node 24 or newer already first on PATH: that one', async (t) => {
  const folder = dirname(process.execPath)
  t.equal(await runtimeFor(`${folder}:${systemPath}`), folder)
})
