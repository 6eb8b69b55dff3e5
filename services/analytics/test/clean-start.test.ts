import t from 'tap'
import { type RunningRole, startRole, writeRecords } from '@pagestream/test-kit'
import { analyticsTopics, eventMessage, oneSecondWindows, readWindows } from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')
const PAGES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']

/** Three events per page in the window at `at`, and one a window later that closes it. */
function round (at: number): Array<{ key: string, value: string }> {
  const events = PAGES.flatMap((page) => [0, 1, 2].map((i) => ({ page, user: `U${i}`, at: at + i * 10, duration: 1 })))
  const flush = PAGES.map((page) => ({ page, user: 'flush', at: at + 1_000, duration: 0 }))
  return [...events, ...flush].map(eventMessage)
}

function loudLines (role: RunningRole, aboveLevel: number): unknown[] {
  return role.logs().filter((line) => Number(line.level) > aboveLevel).map(
    (line) => ({ level: line.level, msg: line.msg })
  )
}

t.test('a start and a restart on several partitions log no errors; the restart nothing above info', async (t) => {
  const topics = await analyticsTopics(t, 'clean-start', 12)
  // windows close by event time only, so the restart's round can add to the window the flush opened
  const env = oneSecondWindows(topics, { COMMIT_INTERVAL_MS: '100', WINDOW_IDLE_CLOSE_MS: '0' })

  const first = await startRole(t, 'analytics', env)
  await writeRecords(topics.input, round(T0))
  // each page's window is final only after the start's seeks and its first batches are done
  const firstRecords = await readWindows(topics.output, PAGES.length, 60_000)
  t.equal(firstRecords.filter((r) => r.final && r.start === T0 && r.count === 3).length, PAGES.length,
    'every page counted')
  t.equal(await first.stop(), 0, 'the first start exits cleanly')
  // a fresh broker may still be loading its transaction coordinator: librdkafka warns and retries
  t.same(loudLines(first, 40), [], 'no error lines from the first start to its stop')

  // the restart finds committed offsets and a changelog: it positions every partition from them
  const second = await startRole(t, 'analytics', env)
  await writeRecords(topics.input, round(T0 + 1_000))
  const records = await readWindows(topics.output, PAGES.length * 2, 60_000)
  t.equal(records.filter((r) => r.final && r.start === T0 + 1_000 && r.count === 4).length, PAGES.length,
    'every page counted after the restart')
  t.equal(await second.stop(), 0, 'the restart exits cleanly')
  t.same(loudLines(second, 30), [], 'no warning or error lines from the restart to its stop')
})
