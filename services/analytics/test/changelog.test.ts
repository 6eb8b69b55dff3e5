import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ensureChangelog } from '../src/changelog.js'
import { TEST_BROKERS, withAdmin } from '@pagestream/test-kit'
import { analyticsTopics } from './fixture.js'

const root = join(import.meta.dirname, '..', '..', '..')

/**
 * The topic's configs as the broker reports them. The JS admin client cannot describe configs,
 * so this asks Kafka's own ConfigCommand, from the jars deploy/local/broker.sh runs the test broker with.
 */
function describeTopic (topic: string): Map<string, string> {
  execFileSync(join(root, 'deploy', 'local', 'broker.sh'), ['jars'], { stdio: 'ignore' })
  const version = /<kafka\.version>(.*)<\/kafka\.version>/.exec(
    readFileSync(join(root, 'deploy', 'local', 'pom.xml'), 'utf8')
  )?.[1]
  const libs = join(process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream'), `kafka-${version}`, 'libs',
    '*')
  const out = execFileSync('java', ['-cp', libs, 'kafka.admin.ConfigCommand', '--bootstrap-server', TEST_BROKERS,
    '--entity-type', 'topics', '--entity-name', topic, '--describe'], { encoding: 'utf8' })
  return new Map([...out.matchAll(/^\s+([a-z.]+)=(\S+) sensitive=/gm)].map((m) => [m[1]!, m[2]!]))
}

t.test('a new changelog rolls its segments within minutes and is compacted eagerly', async (t) => {
  const topics = await analyticsTopics(t, 'changelog', 2)
  await withAdmin((admin) => ensureChangelog(admin, topics.input, topics.changelog, 1))
  const configs = describeTopic(topics.changelog)
  t.equal(configs.get('cleanup.policy'), 'compact')
  t.ok(Number(configs.get('segment.ms')) <= 15 * 60_000,
    `segment.ms ${configs.get('segment.ms')}: the active segment, never compacted, rolls within 15 minutes`)
  t.ok(Number(configs.get('segment.bytes')) <= 64 * 1024 * 1024, `segment.bytes ${configs.get('segment.bytes')}`)
  t.ok(Number(configs.get('min.cleanable.dirty.ratio')) <= 0.2,
    `min.cleanable.dirty.ratio ${configs.get('min.cleanable.dirty.ratio')}`)
  t.equal(configs.get('min.compaction.lag.ms'), '0')

  // an existing changelog with the input's partition count is accepted as it is
  await withAdmin((admin) => ensureChangelog(admin, topics.input, topics.changelog, 1))
})

t.test('an existing changelog whose partition count differs from the input is refused', async (t) => {
  const topics = await analyticsTopics(t, 'changelog-count', 2)
  const other = await analyticsTopics(t, 'changelog-other', 3)
  await t.rejects(
    withAdmin((admin) => ensureChangelog(admin, topics.input, other.input, 1)),
    /has 3 partitions but .* has 2; they must match/
  )
})

t.test('a changelog missing from a stale topic list is still checked, not taken as created', async (t) => {
  const topics = await analyticsTopics(t, 'changelog-stale', 2)
  const other = await analyticsTopics(t, 'changelog-stale-other', 3)
  // the broker's topic list lags a topic created a moment ago: creating it again answers "exists"
  type Admin = Parameters<Parameters<typeof withAdmin>[0]>[0]
  const staleList = (admin: Admin): Admin => new Proxy(admin, {
    get: (target, name) => name === 'listTopics'
      ? async () => []
      : (target[name as keyof Admin] as (...args: unknown[]) => unknown).bind(target),
  })
  await t.rejects(
    withAdmin((admin) => ensureChangelog(staleList(admin), topics.input, other.input, 1)),
    /has 3 partitions but .* has 2; they must match/
  )
  await withAdmin((admin) => ensureChangelog(staleList(admin), topics.input, topics.input, 1))
})
