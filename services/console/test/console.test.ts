import t from 'tap'
import {
  createTopics, readTopic, runConsoleTool as runTool, topicExists, uniqueName, writeRecords,
} from '@pagestream/test-kit'

t.test('pagestream-produce sends valid lines keyed by page and reports the bad ones', async (t) => {
  const topic = uniqueName('console-in')
  await createTopics(t, [topic])
  const lines = [
    JSON.stringify({ name: 'blog', user: 'U1', date: 1700000000000, duration: 5 }),
    'not json',
    JSON.stringify({ name: 'news', user: 'U2', date: '2023-11-14T22:13:20Z', duration: -1 }),
    '',
    JSON.stringify({ name: 'news', user: 'U2', date: '2023-11-14T22:13:20Z', duration: 7 }),
  ].join('\n')
  const result = await runTool('produce', [topic], lines)
  t.equal(result.code, 1, 'exit code 1 when a line was skipped')
  t.match(result.stderr, /line 2 skipped: .*not valid JSON/)
  t.match(result.stderr, /line 3 skipped: duration: must be a non-negative integer/)
  t.match(result.stderr, new RegExp(`2 sent to ${topic}, 2 skipped`))
  const records = await readTopic(topic, { count: 2 })
  t.same(records.map((r) => [r.key, JSON.parse(r.value ?? '').date]),
    [['blog', '2023-11-14T22:13:20.000Z'], ['news', '2023-11-14T22:13:20.000Z']])

  const raw = await runTool('produce', ['--raw', topic], 'anything goes\n')
  t.equal(raw.code, 0)
  t.equal((await readTopic(topic, { count: 3 })).at(-1)?.value, 'anything goes')
})

t.test('pagestream-consume prints values (and keys) from the beginning', async (t) => {
  const topic = uniqueName('console-out')
  await createTopics(t, [topic])
  await writeRecords(topic, [{ key: 'a', value: 'first' }, { key: 'b', value: 'second' }])
  const result = await runTool('consume', ['--from-beginning', '--key', '--max-messages', '2', topic])
  t.equal(result.code, 0)
  t.equal(result.stdout, 'a\tfirst\nb\tsecond\n')
  const help = await runTool('consume', ['--help'])
  t.equal(help.code, 0)
  t.match(help.stderr, /Usage: pagestream-consume/)
  t.equal((await runTool('consume', [])).code, 2, 'a missing topic is a usage error')
  t.equal((await runTool('consume', ['--max-messages', '0', topic])).code, 2, 'a count below 1 is a usage error')
})

t.test('pagestream-produce to a topic that does not exist reports it and exits 1, without creating it', async (t) => {
  const missing = uniqueName('console-missing')
  const event = JSON.stringify({ name: 'blog', user: 'U1', date: 1700000000000, duration: 5 })
  const result = await runTool('produce', [missing], event)
  t.equal(result.code, 1)
  t.match(result.stderr, /line 1 not sent/)
  t.match(result.stderr, /0 sent to .*, 1 not acknowledged/)
  t.notOk(await topicExists(missing), 'the topic was not created')
})
