// What `make chaos` prints and keeps: a progress line while a drill runs, one table of every drill's
// invariants at the end, and chaos/results/latest.json. Plain functions of the results, so a test can run them.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

/** Progress on stderr: one rewritten line on a terminal, plain lines otherwise. */
export function progress (message) {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${message}`)
  else process.stderr.write(`${message}\n`)
}

/** Ends a rewritten progress line, so what follows starts on a line of its own. */
export function endProgress () {
  if (process.stderr.isTTY) process.stderr.write('\n')
}

/**
 * One invariant of a drill: what was measured against what it must be.
 * @param {string} name
 * @param {number | string | boolean} value
 * @param {{ op: '=' | '<=' | '>=', want: number | string | boolean } | undefined} goal undefined: a figure only
 */
export function check (name, value, goal) {
  if (goal === undefined) return { name, value, pass: true }
  const compare = {
    '=': () => value === goal.want,
    '<=': () => Number(value) <= Number(goal.want),
    '>=': () => Number(value) >= Number(goal.want),
  }
  const pass = compare[goal.op]()
  return { name, value, goal: `${goal.op} ${goal.want}`, pass }
}

const shown = (value) => typeof value === 'number'
  ? (Number.isInteger(value) ? value.toLocaleString('en-US') : Number(value.toPrecision(3)).toString())
  : String(value)

/**
 * The summary: one line per check, grouped by drill, as a Markdown table (the README shows it as is).
 * @param {Array<{ id: string, seconds: number, checks: ReturnType<typeof check>[], error?: string }>} drills
 */
export function summaryTable (drills) {
  const lines = ['| drill | check | measured | goal | verdict |', '|---|---|---|---|---|']
  for (const drill of drills) {
    const label = `${drill.id} (${Math.round(drill.seconds)} s)`
    if (drill.error !== undefined) lines.push(`| ${label} | did not complete | ${escape(drill.error)} | | FAIL |`)
    drill.checks.forEach((c, i) => {
      const verdict = c.goal === undefined ? '' : c.pass ? 'pass' : 'FAIL'
      lines.push(`| ${i === 0 ? label : ''} | ${c.name} | ${shown(c.value)} | ${c.goal ?? ''} | ${verdict} |`)
    })
  }
  return lines.join('\n')
}

function escape (text) {
  return text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 200)
}

export function drillPassed (drill) {
  return drill.error === undefined && drill.checks.every((c) => c.pass)
}

/** Writes the run as JSON (the folder is created when missing). */
export async function writeResults (path, run) {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${JSON.stringify(run, null, 2)}\n`)
}
