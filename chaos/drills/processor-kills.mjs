// Transformer and analytics each SIGKILLed 3 times while they work through many events over many windows:
// R3 must hold every input exactly once (by event id, transformed), and R4's final windows must equal a count
// made here from the events, with nothing of the roles' code.
import { startRole, waitFor } from '@pagestream/test-kit'
import { check } from '../lib/report.mjs'
import { PAGES, WINDOW_MS, drillTopics, nthEvent, pageEventRecord, roleEnv, writeEvents } from '../lib/pipeline.mjs'
import { follow, recordCount } from '../lib/topics.mjs'

const KILLS = 3

/** Per page and window: what R4's final record must say. */
function truth (count) {
  const windows = new Map()
  for (let i = 0; i < count; i++) {
    const { name, user, at, duration } = nthEvent(i)
    const start = Math.floor(at / WINDOW_MS) * WINDOW_MS
    const key = `${name}@${start}`
    const row = windows.get(key) ?? { count: 0, durationSum: 0, users: new Set(), longViews: 0 }
    row.count++
    row.durationSum += duration
    row.users.add(user)
    if (duration > 100) row.longViews++
    windows.set(key, row)
  }
  return new Map([...windows].map(([key, row]) => [key, {
    count: row.count, durationSum: row.durationSum, distinctUsers: row.users.size, longViews: row.longViews,
  }]))
}

const transformed = (i) => {
  const { name, user, at, duration } = nthEvent(i)
  return JSON.stringify({
    name: name.toUpperCase(), user: user.toUpperCase(), date: new Date(at).toISOString(), duration: duration * 2,
  })
}

export const drill = {
  title: '3 SIGKILLs each of transformer and analytics over many events and windows',
  async run ({ t, options, progress }) {
    const events = options.events
    const topics = await drillTopics(t, 'chaos-proc')
    const env = roleEnv(topics)
    const expected = truth(events)
    const ready = { readyTimeoutMs: 120_000 }
    const roles = {
      transformer: await startRole(t, 'transformer', env.transformer, ready),
      analytics: await startRole(t, 'analytics', env.analytics, ready),
    }

    const r3 = new Map()
    let r3Wrong = 0
    const r3Reader = await follow(topics.r3, ({ value, headers }) => {
      const id = headers['event-id']
      r3.set(id, (r3.get(id) ?? 0) + 1)
      const index = Number(id?.slice(3))
      if (!(id?.startsWith('ev-') && index < events && value === transformed(index))) r3Wrong++
    })
    t.teardown(() => r3Reader.stop())
    const finals = new Map()
    const r4Reader = await follow(topics.r4, ({ value }) => {
      const record = JSON.parse(value)
      if (!record.final) return
      const key = `${record.page}@${Date.parse(record.windowStart)}`
      const seen = finals.get(key)
      const row = {
        count: record.count,
        durationSum: record.durationSum,
        distinctUsers: record.distinctUsers,
        longViews: record.longViews,
      }
      finals.set(key, { row, copies: (seen?.copies ?? 0) + 1 })
    })
    t.teardown(() => r4Reader.stop())

    let written = 0
    const began = Date.now()
    const writing = writeEvents([topics.r1, topics.r2], events, (i) => pageEventRecord(nthEvent(i)), (n) => {
      written = n
    }).then(async () => {
      // one event per page far ahead: event time passes every window, so the last ones close too
      const flush = PAGES.map((name, i) => pageEventRecord({
        id: `flush-${i}`, name, user: 'flush', at: nthEvent(events).at + 60_000, duration: 0,
      }))
      await writeEvents([topics.r2], flush.length, (i) => flush[i])
    })

    // each kill once a further quarter of the output is there, so every kill falls mid-stream
    const kills = { transformer: [], analytics: [] }
    const killer = (name, done) => (async () => {
      for (let k = 1; k <= KILLS; k++) {
        await waitFor(`${name} to pass ${k}/${KILLS + 1} of its output`, () => done() >= k / (KILLS + 1), 1_800_000, 50)
        await roles[name].stop('SIGKILL')
        const killed = Date.now()
        roles[name] = await startRole(t, name, env[name], ready)
        kills[name].push({ atFraction: Number(done().toFixed(2)), readyMs: Date.now() - killed })
      }
    })()
    const r3Done = () => r3.size / events
    const r4Done = () => finals.size / expected.size
    const report = setInterval(() => progress(
      `written ${written.toLocaleString('en-US')}/${events.toLocaleString('en-US')}; ` +
      `R3 ${r3.size.toLocaleString('en-US')} ids; R4 ${finals.size.toLocaleString('en-US')}/` +
      `${expected.size.toLocaleString('en-US')} windows final; ` +
      `kills ${kills.transformer.length}+${kills.analytics.length}/${2 * KILLS}`
    ), 2_000)
    try {
      await Promise.all([
        writing, killer('transformer', r3Done), killer('analytics', r4Done),
        waitFor('every event in R3 and every window final in R4', () => r3Done() >= 1 && r4Done() >= 1,
          1_800_000, 200),
      ])
      // a duplicate would come after the last expected record: give it time to show up
      await waitFor('R3 and R4 to stay quiet for 3 s', () => r3Reader.quietFor() > 3_000 &&
        r4Reader.quietFor() > 3_000, 60_000, 100)
    } finally {
      clearInterval(report)
    }
    const seconds = (Date.now() - began) / 1000

    let missing = 0
    for (let i = 0; i < events; i++) if (!r3.has(`ev-${i}`)) missing++
    const duplicated = [...r3.values()].filter((n) => n > 1).length
    let windowsMissing = 0
    let windowsWrong = 0
    for (const [key, row] of expected) {
      const got = finals.get(key)
      if (got === undefined) windowsMissing++
      else if (JSON.stringify(got.row) !== JSON.stringify(row)) windowsWrong++
    }
    const foreign = [...finals.keys()].filter((key) => !expected.has(key)).length
    const twice = [...finals.values()].filter((f) => f.copies > 1).length
    const slowest = (name) => Math.max(...kills[name].map((k) => k.readyMs))
    return [
      check('events (--events)', events),
      check('transformer SIGKILLs mid-stream', kills.transformer.length, { op: '=', want: KILLS }),
      check('analytics SIGKILLs mid-stream', kills.analytics.length, { op: '=', want: KILLS }),
      check('R3: events missing (by event id)', missing, { op: '=', want: 0 }),
      check('R3: events twice or more', duplicated, { op: '=', want: 0 }),
      check('R3: records not the transform of an input', r3Wrong, { op: '=', want: 0 }),
      check('R4: windows (page x 1 s) expected', expected.size),
      check('R4: windows without a final record', windowsMissing, { op: '=', want: 0 }),
      check('R4: finals differing from the truth', windowsWrong, { op: '=', want: 0 }),
      check('R4: windows with two finals or none expected', twice + foreign, { op: '=', want: 0 }),
      check('dead-lettered or late records', await recordCount(topics.r1DeadLetters) +
        await recordCount(topics.r2DeadLetters) + await recordCount(topics.late), { op: '=', want: 0 }),
      check('slowest restart to ready, transformer / analytics, ms',
        `${slowest('transformer')} / ${slowest('analytics')}`),
      check('first write -> all output exact, s', Number(seconds.toFixed(1))),
      check('end-to-end rate, events/s', Math.round(events / seconds)),
    ]
  },
}
