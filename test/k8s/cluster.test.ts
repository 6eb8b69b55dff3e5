// The chart on a real cluster: the single-node cluster of deploy/local/k8s (built here from the Go module proxy),
// the image loaded into its containerd, `helm install` into a namespace enforcing Pod Security `restricted`, then
// what a user does: helm test, port-forward to the dashboard, the Traefik ingress, pods deleted mid-stream,
// helm upgrade and helm uninstall. Runs with `make k8s-test` (PAGESTREAM_K8S_TEST=1); skipped in `make test`.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { chromiumPage } from '@pagestream/test-kit/browser'
import { CHART, helmBinary } from '@pagestream/test-kit/helm'
import { ROOT, freePort } from '@pagestream/test-kit'
import { waitFor } from '@pagestream/test-kit'

const exec = promisify(execFile)
const K8S = join(ROOT, 'deploy', 'local', 'k8s')
const CLUSTER = join(K8S, 'cluster.sh')
const VALUES = join(K8S, 'values.yaml')
const NAMESPACE = `pagestream-k8s-${process.pid}`
const RELEASE = 'ps'
const FULLNAME = `${RELEASE}-pagestream`
const INGRESS = `http://127.0.0.1:${process.env.K8S_INGRESS_PORT ?? '39380'}`
const RUN = `k8s${Date.now().toString(36)}`
const skip = process.env.PAGESTREAM_K8S_TEST === '1' ? false : 'runs with make k8s-test'

interface Tools { kubectl: string, helm: string, env: NodeJS.ProcessEnv }
let tools: Tools

async function sh (file: string, args: string[], timeoutMs = 600_000): Promise<string> {
  const { stdout } = await exec(file, args, { env: tools?.env ?? process.env, maxBuffer: 64 << 20, timeout: timeoutMs })
  return stdout
}
const kubectl = (...args: string[]) => sh(tools.kubectl, ['--namespace', NAMESPACE, ...args])
const helm = (...args: string[]) => sh(tools.helm, ['--namespace', NAMESPACE, ...args], 900_000)
const podJson = async (name: string) => JSON.parse(await kubectl('get', 'pod', name, '-o', 'json'))
const ready = (pod: any) => pod.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') === true

async function releasePods (): Promise<any[]> {
  return JSON.parse(await kubectl('get', 'pods', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'json')).items
}

/** GET through the ingress; the body as JSON. */
async function viaIngress (path: string): Promise<{ status: number, body: any }> {
  const response = await fetch(`${INGRESS}${path}`, { signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text }
}

/** Publishes one lab event per tick until stopped; what the producer acknowledged (200) is kept. */
function publisher (topic: string, nameOf: (i: number) => string, intervalMs = 100) {
  const acked: Array<{ name: string, date: string }> = []
  const stopping = new AbortController()
  let i = 0
  const done = (async () => {
    while (!stopping.signal.aborted) {
      const name = nameOf(i++)
      try {
        const answer = await viaIngress(`/publish/${topic}/${name}`)
        if (answer.status === 200) acked.push({ name, date: answer.body.date })
      } catch { /* not acknowledged: the producer was away, the event may or may not exist */ }
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return { acked, stop: async () => { stopping.abort(); await done } }
}

/** Keys of a topic's committed records, read in the consumer role's pod with the image's console tool. */
async function committedKeys (topic: string): Promise<string[]> {
  // the tool follows the topic; `timeout` ends it once the backlog is surely read
  const output = await exec(tools.kubectl, ['--namespace', NAMESPACE, 'exec', `deploy/${FULLNAME}-consumer`, '--',
    'timeout', '20', 'node', 'services/console/dist/consume.js', '--from-beginning', '--key', topic],
  { env: tools.env, maxBuffer: 64 << 20, timeout: 60_000 }).then((r) => r.stdout, (err) => String(err.stdout ?? ''))
  return output.split('\n').map((line) => line.split('\t')[0]!).filter((key) => key !== '')
}

interface Teardown { teardown(fn: () => unknown): void }

async function portForward (t: Teardown, target: string, remotePort: number): Promise<number> {
  const port = await freePort()
  const args = ['--namespace', NAMESPACE, 'port-forward', target, `${port}:${remotePort}`]
  const child: ChildProcess = spawn(tools.kubectl, args, { env: tools.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGTERM') })
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  await waitFor(`kubectl port-forward ${target}`, () => output.includes('Forwarding from'), 30_000)
  return port
}

t.test('pagestream on a single-node Kubernetes cluster', { skip, timeout: 2_400_000 }, async (t) => {
  let began = Date.now()
  const wasUp = await exec(CLUSTER, ['status']).then(() => true, () => false)
  // a cluster already up is used as it is
  if (!wasUp) await exec(CLUSTER, ['up'], { timeout: 3_600_000, maxBuffer: 16 << 20 })
  const env = (await exec(CLUSTER, ['env'])).stdout
  const kubeconfig = /KUBECONFIG=(\S+)/.exec(env)![1]!
  const bin = /PATH=([^:]+):/.exec(env)![1]!
  tools = { kubectl: join(bin, 'kubectl'), helm: await helmBinary(), env: { ...process.env, KUBECONFIG: kubeconfig } }
  t.comment(`cluster ${wasUp ? 'was already up' : 'started'} in ${Math.round((Date.now() - began) / 1000)} s`)
  t.teardown(async () => {
    if (process.env.K8S_KEEP === '1') return
    await exec(tools.kubectl, ['delete', 'namespace', NAMESPACE, '--wait=false'], { env: tools.env }).catch(() => {})
    if (!wasUp) await exec(CLUSTER, ['down'], { timeout: 300_000 })
  })

  began = Date.now()
  const broker = (await sh(join(ROOT, 'test', 'compose', 'broker-image.sh'), [], 1_800_000)).trim()
  await sh(CLUSTER, ['load', 'pagestream:dev', broker], 600_000)
  t.comment(`images loaded in ${Math.round((Date.now() - began) / 1000)} s`)

  await sh(tools.kubectl, ['create', 'namespace', NAMESPACE])
  await sh(tools.kubectl, ['label', 'namespace', NAMESPACE, 'pod-security.kubernetes.io/enforce=restricted',
    'pod-security.kubernetes.io/warn=restricted'])
  const [repository, tag] = broker.split(':')
  began = Date.now()
  const installed = await exec(tools.helm, ['install', RELEASE, CHART, '--namespace', NAMESPACE, '--values', VALUES,
    '--set', `redpanda.image.repository=${repository}`, '--set', `redpanda.image.tag=${tag}`,
    '--wait', '--timeout', '10m'],
  { env: tools.env, maxBuffer: 16 << 20, timeout: 900_000 })
  t.comment(`helm install --wait took ${Math.round((Date.now() - began) / 1000)} s`)
  t.notMatch(installed.stderr, /PodSecurity|violate/, 'no Pod Security warning in a namespace enforcing restricted')

  await t.test('the node is Ready and every pod of the release is Ready', async (t) => {
    const nodes = JSON.parse(await sh(tools.kubectl, ['get', 'nodes', '-o', 'json'])).items
    t.equal(nodes.length, 1, 'one node')
    t.ok(nodes[0].status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True'), 'Ready')
    const pods = await releasePods()
    t.same(pods.filter((pod) => !ready(pod)).map((pod) => pod.metadata.name), [], `${pods.length} pods, all Ready`)
    t.ok(pods.length >= 6, 'five roles and the broker')
  })

  await t.test('helm test sends an event from the producer to the analytics query API', async (t) => {
    const out = await helm('test', RELEASE, '--logs', '--timeout', '5m')
    t.match(out, /published to R2/, 'the test pod published')
    t.match(out, /analytics counted it/, 'and found its window in the analytics query API')
  })

  await t.test('port-forward to the analytics Service serves the dashboard with live series', async (t) => {
    const port = await portForward(t, `service/${FULLNAME}-analytics`, 8080)
    const page = await chromiumPage(t, { width: 1200, height: 800 })
    await page.goto(`http://127.0.0.1:${port}/`)
    await page.locator('#connection[data-state="open"]').waitFor({ timeout: 30_000 })
    type Api = { pagestream: { chartedPages(): string[], points(kind: string): number } }
    await page.waitForFunction(() => (globalThis as unknown as Api).pagestream.points('count') >= 15, undefined,
      { timeout: 60_000 })
    const charted = await page.evaluate(() => (globalThis as unknown as Api).pagestream.chartedPages())
    t.ok(charted.length > 0, `series of the in-cluster supplier's pages: ${charted.join(', ')}`)
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true })
    await page.screenshot({ path: join(ROOT, 'test-artifacts', 'k8s-dashboard.png') })
  })

  await t.test('through the Traefik ingress: /publish answers and /analytics streams its events as they come',
    async (t) => {
      const published = await viaIngress(`/publish/R1/${RUN}-ingress`)
      t.equal(published.status, 200, 'GET /publish/R1/:name answers')
      t.equal(published.body.name, `${RUN}-ingress`)
      t.equal((await viaIngress('/metrics')).status, 404, '/metrics stays inside the cluster')

      const controller = new AbortController()
      const response = await fetch(`${INGRESS}/analytics`, { signal: controller.signal })
      t.match(response.headers.get('content-type'), /text\/event-stream/)
      const arrivals: number[] = []
      const reader = response.body!.getReader()
      let buffered = ''
      while (arrivals.length < 8) {
        const { value, done } = await reader.read()
        if (done) break
        buffered += Buffer.from(value).toString('utf8')
        const events = buffered.split('\n\n')
        buffered = events.pop()!
        for (const event of events) if (/^data:/m.test(event)) arrivals.push(Date.now())
      }
      controller.abort()
      // the first events may be the stream's replayed history, sent at once
      const live = arrivals.slice(1)
      const gaps = live.slice(1).map((at, i) => at - live[i]!)
      t.comment(`SSE gaps through the ingress (ms): ${gaps.join(', ')}`)
      // unbuffered: a never-ending stream whose events (about 100 bytes each) reach us while it stays open, in
      // chunks of their own, not held back until a buffer fills or the stream ends
      t.equal(arrivals.length, 8, 'eight events while the stream was open')
      t.ok(new Set(live).size >= 4, 'in separate chunks over time')
    })

  await t.test('StatefulSet pods keep their instance ids; deleted mid-stream, R3 and R4 stay exact', async (t) => {
    for (const role of ['transformer', 'analytics']) {
      const pod = await podJson(`${FULLNAME}-${role}-0`)
      const env = pod.spec.containers[0].env
      const id = env.find((e: any) => e.name === `${role.toUpperCase()}_INSTANCE_ID`)
      t.same(id?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', `${role}: instance id from the pod name`)
    }
    const r1 = publisher('R1', (i) => `${RUN}-r1-${i}`)
    const page = `${RUN}-r2`
    const r2 = publisher('R2', () => page, 150)
    await waitFor('events before the deletions', () => r1.acked.length >= 20 && r2.acked.length >= 10, 60_000)
    const before = new Map<string, string>()
    for (const role of ['transformer', 'analytics']) {
      before.set(role, (await podJson(`${FULLNAME}-${role}-0`)).metadata.uid)
    }
    // the transformer without a grace period: its replacement may start while it still runs, and the
    // transactional.id both share fences the old one
    await kubectl('delete', 'pod', `${FULLNAME}-transformer-0`, '--grace-period=0', '--force', '--wait=false')
    await kubectl('delete', 'pod', `${FULLNAME}-analytics-0`, '--wait=false')
    for (const role of ['transformer', 'analytics']) {
      await waitFor(`a new ${role}-0 Ready`, async () => {
        const pod = await podJson(`${FULLNAME}-${role}-0`).catch(() => undefined)
        return pod !== undefined && pod.metadata.uid !== before.get(role) && ready(pod)
      }, 180_000, 1_000)
    }
    const afterCount = r1.acked.length
    await waitFor('events after the restarts', () => r1.acked.length >= afterCount + 20, 60_000)
    await Promise.all([r1.stop(), r2.stop()])

    const wanted = new Set(r1.acked.map((e) => e.name.toUpperCase()))
    let keys: string[] = []
    await waitFor('every acknowledged R1 event in R3', async () => {
      keys = (await committedKeys('R3')).filter((key) => key.startsWith(`${RUN}-R1-`.toUpperCase()))
      return [...wanted].every((name) => keys.includes(name))
    }, 180_000, 2_000)
    const counts = new Map<string, number>()
    for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1)
    t.same([...counts].filter(([, n]) => n !== 1), [], `R3: each of ${wanted.size} acknowledged events exactly once`)

    // R4: every final window of the page counts exactly the acknowledged events of its time range
    let finals: any[] = []
    const total = r2.acked.length
    await waitFor('final windows holding every acknowledged event of the page', async () => {
      const answer = await viaIngress(`/api/pages/${page}/windows`)
      finals = (answer.body.windows ?? []).filter((w: any) => w.final)
      return finals.reduce((sum, w) => sum + w.count, 0) >= total
    }, 180_000, 2_000)
    const expected = finals.map((w) => r2.acked.filter((e) => e.date >= w.windowStart && e.date < w.windowEnd).length)
    t.same(finals.map((w) => w.count), expected, `R4: ${finals.length} final windows, counts exact (${total} events)`)
    t.equal(new Set(finals.map((w) => w.windowStart)).size, finals.length, 'one final record per window')
  })

  await t.test('helm upgrade with a changed value rolls every pod and loses no acknowledged event', async (t) => {
    const before = new Map((await releasePods()).map((pod) => [pod.metadata.name, pod.metadata.uid]))
    const r1 = publisher('R1', (i) => `${RUN}-up-${i}`)
    await waitFor('events before the upgrade', () => r1.acked.length >= 10, 60_000)
    const [repository, tag] = broker.split(':')
    await helm('upgrade', RELEASE, CHART, '--values', VALUES, '--set', `redpanda.image.repository=${repository}`,
      '--set', `redpanda.image.tag=${tag}`, '--set', 'logLevel=debug', '--wait', '--timeout', '10m')
    const count = r1.acked.length
    await waitFor('events after the upgrade', () => r1.acked.length >= count + 10, 60_000)
    await r1.stop()
    const after = await releasePods()
    const roles = after.filter((pod) => pod.metadata.labels['app.kubernetes.io/component'] !== 'redpanda')
    const kept = roles.filter((pod) => before.get(pod.metadata.name) === pod.metadata.uid)
    t.same(kept.map((pod) => pod.metadata.name), [], `every role's pod replaced (${roles.length})`)
    const wanted = r1.acked.map((e) => e.name.toUpperCase())
    let keys: string[] = []
    await waitFor('every acknowledged event in R3', async () => {
      keys = (await committedKeys('R3')).filter((key) => key.startsWith(`${RUN}-up-`.toUpperCase()))
      return wanted.every((name) => keys.includes(name))
    }, 180_000, 2_000)
    t.equal(keys.length, new Set(keys).size, `each of ${wanted.length} acknowledged events once in R3`)
  })

  await t.test('helm uninstall leaves nothing of the release behind', async (t) => {
    await helm('uninstall', RELEASE, '--wait', '--timeout', '5m')
    // the pods go last: their owners' deletion lets them stop within their grace periods
    await waitFor('the release\'s pods gone', async () => (await releasePods()).length === 0, 180_000, 2_000)
    const kinds = (await sh(tools.kubectl, ['api-resources', '--verbs=list', '--namespaced', '-o', 'name']))
      .split('\n').filter((kind) => kind !== '' && !/^events/.test(kind))
    const left = (await kubectl('get', kinds.join(','), '-o', 'name')).split('\n').filter((name) => name !== '')
    // what every namespace holds from its creation
    const own = ['configmap/kube-root-ca.crt', 'serviceaccount/default']
    t.same(left.filter((name) => !own.includes(name)), [], 'no object left in the namespace (persistence off: no PVC)')
  })
})
