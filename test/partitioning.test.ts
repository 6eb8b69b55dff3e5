import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { TEST_BROKERS, createTopics, readTopic, runConsoleTool, startRole, uniqueName } from '@pagestream/test-kit'
import { jvmProduce } from '@pagestream/test-kit/jvm'

const PARTITIONS = 6
// short and long, ASCII and not: murmur2 runs over the UTF-8 bytes of the key
const pages = [
  ...Array.from({ length: 40 }, (_, i) => `page-${i}`),
  'blog', 'news', 'shop', 'P1', 'P2', 'x', 'página-ü', 'страница', 'ページ', 'smile-\u{1F600}', 'a'.repeat(256),
]
const event = (page: string, user: string) => ({ name: page, user, date: '2024-01-01T00:00:00.000Z', duration: 1 })
const userOf = (value: string | null) => (JSON.parse(value ?? '{}') as { user: string }).user
const lines = (user: string) => pages.map((page) => JSON.stringify(event(page, user)))

t.test('a JVM producer, the HTTP producer and the console tool put each page on the same partition', async (t) => {
  const topic = uniqueName('partitioning')
  await createTopics(t, [topic], PARTITIONS)

  const jvm = await jvmProduce(TEST_BROKERS, topic, pages.map((page, i) => ({ key: page, value: lines('jvm')[i]! })))
  const javaPartition = new Map(jvm.map((record) => [record.key, record.partition]))
  t.equal(javaPartition.size, pages.length, 'the Java client placed every page')
  t.ok(new Set(javaPartition.values()).size > PARTITIONS / 2, 'and spread them over the partitions')

  const producer = await startRole(t, 'producer', { PRODUCER_TOPICS: topic })
  t.teardown(() => producer.stop())
  const response = await fetch(`${producer.url}/events/${topic}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: `[${lines('http').join(',')}]`,
  })
  t.equal(response.status, 200)
  const { results } = await response.json() as { results: Array<{ partition: number }> }
  t.same(results.map((r, i) => [pages[i], r.partition]), pages.map((page) => [page, javaPartition.get(page)]),
    'POST /events: every page on the partition the Java client chose')
  const lab = await Promise.all(['blog', 'página-ü', 'page-7'].map(async (page) => {
    const published = await fetch(`${producer.url}/publish/${topic}/${encodeURIComponent(page)}`)
    return published.status
  }))
  t.same(lab, [200, 200, 200])

  const console = await runConsoleTool('produce', [topic], lines('console').join('\n'))
  t.equal(console.code, 0, console.stderr)

  // kcat uses librdkafka's default partitioner (CRC32): the control that shows the comparison can fail
  const kcat = spawn('kcat', ['-b', TEST_BROKERS, '-t', topic, '-P', '-K', '\t'],
    { stdio: ['pipe', 'ignore', 'inherit'] })
  kcat.stdin.end(lines('kcat').map((line, i) => `${pages[i]}\t${line}\n`).join(''))
  t.same(await once(kcat, 'exit'), [0, null], 'kcat wrote its records')

  const records = await readTopic(topic, { count: pages.length * 4 + 3 })
  const placed = (user: string) => records
    .filter((r) => userOf(r.value) === user)
    .map((r) => [r.key, r.partition] as const)
    .sort(([a], [b]) => String(a).localeCompare(String(b)))
  const expected = pages.map((page) => [page, javaPartition.get(page)] as const).sort(([a], [b]) => a.localeCompare(b))
  t.same(placed('console'), expected, 'pagestream-produce: every page on the partition the Java client chose')
  for (const r of records.filter((r) => ['U1', 'U2'].includes(userOf(r.value)))) {
    t.equal(r.partition, javaPartition.get(r.key ?? ''), `GET /publish: ${r.key} on the Java client's partition`)
  }
  const kcatPlaced = new Map(placed('kcat'))
  const elsewhere = pages.filter((page) => kcatPlaced.get(page) !== javaPartition.get(page))
  t.ok(elsewhere.length > pages.length / 4,
    `librdkafka's default puts ${elsewhere.length} of ${pages.length} elsewhere`)
})
