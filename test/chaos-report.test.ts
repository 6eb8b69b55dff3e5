import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { check, drillPassed, endProgress, progress, summaryTable, writeResults } from '../chaos/lib/report.mjs'

t.test('a check passes or fails by its goal; a figure without a goal always passes', async (t) => {
  t.equal(check('lost', 0, { op: '=', want: 0 }).pass, true)
  t.equal(check('lost', 1, { op: '=', want: 0 }).pass, false)
  t.equal(check('recovery ms', 900, { op: '<=', want: 1000 }).pass, true)
  t.equal(check('recovery ms', 1001, { op: '<=', want: 1000 }).pass, false)
  t.equal(check('acknowledged', 99_999, { op: '>=', want: 100_000 }).pass, false)
  t.same(check('503s', 3402), { name: '503s', value: 3402, pass: true }, 'a figure only')
  t.equal(check('accepted', 'PUT, DELETE', { op: '=', want: 0 }).pass, false, 'a string is never equal to 0')
})

t.test('the summary table: one row per check, grouped by drill, failures and errors marked', async (t) => {
  const drills = [
    { id: 'broker-kill', seconds: 117.4, checks: [check('lost', 0, { op: '=', want: 0 }), check('503s', 3402)] },
    { id: 'poison', seconds: 12, checks: [check('dead-lettered', 9_999, { op: '=', want: 10_000 })] },
    { id: 'sse-stall', seconds: 3, checks: [], error: 'timed out | waiting\nfor 1000 drops' },
  ]
  t.equal(summaryTable(drills), [
    '| drill | check | measured | goal | verdict |',
    '|---|---|---|---|---|',
    '| broker-kill (117 s) | lost | 0 | = 0 | pass |',
    '|  | 503s | 3,402 |  |  |',
    '| poison (12 s) | dead-lettered | 9,999 | = 10000 | FAIL |',
    '| sse-stall (3 s) | did not complete | timed out \\| waiting for 1000 drops | | FAIL |',
  ].join('\n'))
  t.same(drills.map(drillPassed), [true, false, false])
})

t.test('the results are written as JSON, the folder made when missing', async (t) => {
  const folder = await mkdtemp(join(tmpdir(), 'chaos-report-'))
  t.teardown(() => rm(folder, { recursive: true, force: true }))
  const path = join(folder, 'results', 'latest.json')
  const run = { pass: true, drills: [{ id: 'poison', seconds: 1, checks: [check('lost', 0, { op: '=', want: 0 })] }] }
  await writeResults(path, run)
  t.same(JSON.parse(await readFile(path, 'utf8')), run)
})

t.test('progress goes to stderr, a line each when stderr is not a terminal', async (t) => {
  const written: string[] = []
  const write = process.stderr.write
  const tty = process.stderr.isTTY
  t.teardown(() => { process.stderr.write = write; process.stderr.isTTY = tty })
  process.stderr.write = ((chunk: string) => { written.push(chunk); return true }) as typeof process.stderr.write
  process.stderr.isTTY = false
  progress('1/3 acknowledged')
  endProgress()
  process.stderr.isTTY = true
  progress('2/3 acknowledged')
  endProgress()
  t.same(written, ['1/3 acknowledged\n', '\r\x1b[K2/3 acknowledged', '\n'])
})
