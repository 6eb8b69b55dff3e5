// `make bench`: runs every bench/<row>.bench.mjs (or those named: `node bench/run.mjs publish latency`,
// `make bench ROW=publish`), one after the other, each in its own process, with a progress line.
// Collects each row's `BENCH_RESULT {...}` line, prints one summary table, writes
// bench/results/latest.json and latest.svg, and exits non-zero when a check failed or a row crashed.
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { attainment, chartSvg } from './chart.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).map((f) => f.slice(0, -'.bench.mjs'.length))
  .sort()
const named = process.argv.slice(2).flatMap((arg) => arg.split(',')).filter(Boolean)
const unknown = named.filter((id) => !available.includes(id))
if (unknown.length > 0) {
  console.error(`unknown row(s) ${unknown.join(', ')}; rows: ${available.join(', ')}`)
  process.exit(2)
}
const ids = named.length > 0 ? available.filter((id) => named.includes(id)) : available

const started = Date.now()
const elapsed = () => {
  const s = Math.round((Date.now() - started) / 1000)
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

/** Runs one row; its table goes to our stdout, its progress to our stderr, its result line is kept. */
function runRow (id, index) {
  return new Promise((resolve) => {
    const rowStarted = Date.now()
    console.log(`\n== [${index + 1}/${ids.length}] ${id} (bench ${elapsed()} so far)`)
    const child = spawn(process.execPath, [join(here, `${id}.bench.mjs`)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let result
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('BENCH_RESULT ')) result = JSON.parse(line.slice('BENCH_RESULT '.length))
      else console.log(line)
    })
    // rows write progress lines: shown as one line, prefixed with where the whole bench is
    createInterface({ input: child.stderr }).on('line', (line) => {
      const text = line.slice(line.lastIndexOf('\r') + 1).replaceAll('\u001b[K', '')
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K[${index + 1}/${ids.length} ${elapsed()}] ${text}`)
      else process.stderr.write(`[${index + 1}/${ids.length} ${elapsed()}] ${text}\n`)
    })
    child.on('close', (code) => {
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K')
      const seconds = Math.round((Date.now() - rowStarted) / 1000)
      if (result === undefined) {
        resolve({ id, seconds, error: `exited ${code} without a result`, checks: [] })
      } else {
        resolve({ ...result, seconds, exitCode: code })
      }
    })
  })
}

const rows = []
for (const [index, id] of ids.entries()) rows.push(await runRow(id, index))

const fmt = (n) => Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(3)).toString()
const table = [['row', 'check', 'min / median or value', 'goal', 'result']]
for (const row of rows) {
  if (row.error !== undefined) table.push([row.id, '(row failed)', row.error, '', 'FAIL'])
  for (const c of row.checks) {
    const shown = c.kind === 'ratio' ? `${c.min.toFixed(2)} / ${c.median.toFixed(2)}` : `${fmt(c.value)} ${c.unit}`
    table.push([row.id, c.name, shown, `${c.goal.op} ${c.goal.value}`, c.pass ? 'PASS' : 'FAIL'])
  }
}
const widths = table[0].map((_, col) => Math.max(...table.map((line) => line[col].length)))
const total = elapsed()
console.log(`\n== summary (${total}, ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)} at the end)`)
for (const [i, line] of table.entries()) {
  console.log(line.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd())
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '))
}

const failed = rows.filter((row) => row.error !== undefined || row.checks.some((c) => !c.pass))
const results = join(here, 'results')
mkdirSync(results, { recursive: true })
const summary = {
  startedAt: new Date(started).toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  machine: { cores: cpus().length, loadAverageAtEnd: loadavg()[0], node: process.version },
  pass: failed.length === 0,
  rows: rows.map((row) => ({ ...row, checks: row.checks.map((c) => ({ ...c, attainment: attainment(c) })) })),
}
writeFileSync(join(results, 'latest.json'), `${JSON.stringify(summary, null, 2)}\n`)
const subtitle = `${summary.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${total}, ${cpus().length} cores; ` +
  'bar = measured / goal (goal / measured where lower is better)'
writeFileSync(join(results, 'latest.svg'), chartSvg(rows, subtitle))
const missedIds = failed.map((row) => row.id).join(', ')
const missed = failed.length > 0 ? `; ${failed.length} row(s) missed a goal: ${missedIds}` : ''
console.log(`results: bench/results/latest.json, bench/results/latest.svg${missed}`)
process.exitCode = failed.length > 0 ? 1 : 0
