// The lab through containers: redpanda-compose.yml with test/compose/kafka-override.yml (Apache Kafka in place
// of Redpanda, whose image no registry may serve here), the five roles from the image `make image` builds.
// Run by `make e2e`: it needs a Docker engine (deploy/local/setup.sh docker) and builds what is missing.
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { chromiumPage } from '@pagestream/test-kit/browser'
import { labPorts } from './lab-ports.js'

const { ports: LAB_PORTS, env: LAB_PORT_ENV } = await labPorts()
// after labPorts, and nothing of the kit's root before: its Kafka helpers read the broker address when they load
const { ROOT, readTopic, uniqueName, waitFor, withAdmin } = await import('@pagestream/test-kit')
const { ROLES } = await import('@pagestream/test-kit/roles')

const run = promisify(execFile)
const image = process.env.IMAGE ?? 'pagestream:dev'
const project = uniqueName('pagestream-e2e').toLowerCase()
const files = ['-f', 'redpanda-compose.yml', '-f', 'test/compose/kafka-override.yml']
let env: NodeJS.ProcessEnv = { ...process.env, ...LAB_PORT_ENV, PAGESTREAM_IMAGE: image }

async function sh (command: string, args: string[], timeoutMs = 20 * 60_000): Promise<string> {
  const { stdout } = await run(command, args, { cwd: ROOT, env, maxBuffer: 64 << 20, timeout: timeoutMs })
  return stdout.trim()
}
const compose = (...args: string[]) =>
  sh('docker', ['compose', '--project-name', project, '--project-directory', ROOT, ...files, ...args])
const inspect = async (id: string, format: string) => sh('docker', ['inspect', '--format', format, id])
const container = async (service: string) => compose('ps', '--all', '--quiet', service)

/** What the project left behind, by compose's project label. */
async function leftovers (): Promise<string[]> {
  const filter = `label=com.docker.compose.project=${project}`
  const kinds = [['ps', '--all'], ['network', 'ls'], ['volume', 'ls']]
  const lists = await Promise.all(kinds.map(async (kind) =>
    (await sh('docker', [...kind, '--quiet', '--filter', filter])).split('\n').filter(Boolean)))
  return lists.flat()
}

t.before(async () => {
  await sh(join(ROOT, 'deploy/local/setup.sh'), ['docker'])
  await sh(join(ROOT, 'deploy/local/docker.sh'), ['image'])
  env = { ...env, PAGESTREAM_TEST_BROKER_IMAGE: await sh(join(ROOT, 'test/compose/broker-image.sh'), []) }
})
// also when a test fails: containers, network and the broker's volume go
t.teardown(async () => { await compose('down', '--volumes', '--remove-orphans', '--timeout', '20') })

t.test('compose up --wait: the topic set-up, then five roles from the image, healthy by its HEALTHCHECK, not root',
  async (t) => {
    await compose('up', '--detach', '--wait', '--wait-timeout', '300')
    const topics = await container('topics')
    t.equal(await inspect(topics, '{{.State.Status}} {{.State.ExitCode}}'), 'exited 0',
      'the one-shot topic set-up finished')
    for (const role of ROLES) {
      const id = await container(role)
      t.equal(await inspect(id, '{{.State.Health.Status}}'), 'healthy', `${role}: Docker reports it healthy`)
      t.equal(await inspect(id, '{{.Config.Image}}'), image, `${role}: runs ${image}`)
      t.equal(await sh('docker', ['exec', id, 'id', '-u']), '1000', `${role}: runs as uid 1000`)
    }
    t.equal(await inspect(await container('redpanda'), '{{.State.Health.Status}}'), 'healthy', 'the broker too')
    t.equal(await container('console'), '', 'Console is left out')
  type ComposeFile = { services: { topics: { command: string[] } } }
  const rpk = (parse(readFileSync(join(ROOT, 'redpanda-compose.yml'), 'utf8')) as ComposeFile)
    .services.topics.command.join('\n').split('\n').filter((line) => line.trim().startsWith('rpk topic create'))
  const topicWords = (words: string[]) =>
    words.filter((word, i) => !word.startsWith('-') && !/^-[prcX]$/.test(words[i - 1] ?? ''))
  const wanted = rpk.flatMap((line) => topicWords(line.trim().split(/\s+/).slice(3)))
  const existing = await withAdmin((admin) => admin.listTopics())
  t.same(wanted.filter((topic) => !existing.includes(topic)), [],
    `the override creates the topics redpanda-compose.yml does: ${wanted.join(' ')}`)
  })

t.test('GET /publish/R1/x -> R1 -> the consumer logs it -> the transformer -> R3, read committed', async (t) => {
  const page = uniqueName('e2e-page')
  const response = await fetch(`http://127.0.0.1:${LAB_PORTS.PRODUCER}/publish/R1/${page}`)
  t.equal(response.status, 200)
  const event = await response.json() as { name: string, user: string, duration: number }
  t.equal(event.name, page)
  const onR1 = await readTopic('R1', { count: 1, settleMs: 0, timeoutMs: 60_000 })
  t.match(JSON.parse(onR1[0]?.value ?? '{}'), { name: page, user: event.user, duration: event.duration },
    'R1 holds the event')
  await waitFor('the consumer to log the event',
    async () => (await compose('logs', 'consumer')).includes(page), 60_000, 500)
  t.pass('the consumer logged it')
  const onR3 = await readTopic('R3', { count: 1, settleMs: 0, timeoutMs: 60_000, readCommitted: true })
  t.match(JSON.parse(onR3[0]?.value ?? '{}'),
    { name: page.toUpperCase(), user: event.user.toUpperCase(), duration: event.duration * 2 },
    'R3 holds it transformed, committed by the transformer\'s transaction')
})

t.test('supplier -> R2 -> analytics -> /analytics SSE on the published port -> the dashboard in Chromium',
  async (t) => {
    const supplied = await readTopic('R2', { count: 3, settleMs: 0, timeoutMs: 60_000 })
    const lab = (record: { value?: string | null }) => /^P[12]$/.test(JSON.parse(record.value ?? '{}').name)
    t.ok(supplied.every(lab), 'the supplier writes lab events for P1 and P2')

    const abort = new AbortController()
    t.teardown(() => abort.abort())
    const sse = await fetch(`http://127.0.0.1:${LAB_PORTS.ANALYTICS}/analytics`, { signal: abort.signal })
    t.match(sse.headers.get('content-type'), /text\/event-stream/)
    const reader = sse.body?.pipeThrough(new TextDecoderStream()).getReader()
    let received = ''
    const counts = await waitFor('an /analytics event counting P1 or P2', async () => {
      const chunk = await reader?.read()
      received += chunk?.value ?? ''
      const data = [...received.matchAll(/^data: (.+)$/gm)]
        .map((m) => JSON.parse(m[1] as string) as Record<string, number>)
      return data.find((view) => (view.P1 ?? 0) + (view.P2 ?? 0) > 0)
    }, 60_000, 0)
    t.ok((counts.P1 ?? 0) + (counts.P2 ?? 0) > 0, `the rolling count from R4: ${JSON.stringify(counts)}`)
    abort.abort()

    const browser = await chromiumPage(t, { width: 1200, height: 800 })
    await browser.goto(`http://127.0.0.1:${LAB_PORTS.ANALYTICS}/`)
    await browser.locator('#connection[data-state="open"]').waitFor({ timeout: 30_000 })
    await browser.locator('#pages tbody tr[data-page="P1"] .count').filter({ hasText: /^[1-9]\d*$/ })
      .waitFor({ timeout: 30_000 })
  type Dashboard = { pagestream: { points(kind: string): number } }
  await browser.waitForFunction(() => (globalThis as unknown as Dashboard).pagestream.points('count') >= 5,
    undefined, { timeout: 30_000 })
  mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true })
  await browser.screenshot({ path: join(ROOT, 'test-artifacts', 'compose-dashboard.png') })
  t.pass('the dashboard charts the supplied pages (test-artifacts/compose-dashboard.png)')
  })

t.test('docker compose down -v leaves no container, network or volume of the project', async (t) => {
  t.not((await leftovers()).length, 0, 'the project had containers, a network and a volume')
  await compose('down', '--volumes', '--remove-orphans', '--timeout', '20')
  t.same(await leftovers(), [])
})
