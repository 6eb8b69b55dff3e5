// One row of `make bench`: pagestream and its anchor measured side by side in one run, interleaved
// (the order flips every round so neither always runs on a warmer machine), reported as min / median of
// the per-round ratios, plus absolute checks where a goal is a latency or a size. Each row script ends
// with emit(): a human table on stdout and one `BENCH_RESULT {...}` line that bench/run.mjs collects.

/** Progress on stderr: one rewritten line on a terminal, plain lines otherwise. */
export function progress (message) {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${message}`)
  else process.stderr.write(`${message}\n`)
}

/**
 * Runs each variant once per round, alternating the order, and returns every variant's samples.
 * @param {number} rounds
 * @param {Record<string, (round: number) => Promise<number>>} variants
 */
export async function interleave (rounds, variants, label = 'round') {
  const names = Object.keys(variants)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) {
      progress(`${label} ${round + 1}/${rounds}: ${name}`)
      samples[name].push(await variants[name](round))
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\n')
  return samples
}

export function quantile (values, q) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

/**
 * A ratio check from paired samples: per round, ours / anchor (or anchor / ours when lower is better,
 * so a ratio above 1 always means pagestream is ahead). Passes when the median meets the goal.
 */
export function ratioCheck (name, ours, anchor, { goal, higherIsBetter = true }) {
  const ratios = ours.map((value, i) => higherIsBetter ? value / anchor[i] : anchor[i] / value)
  const min = Math.min(...ratios)
  const median = quantile(ratios, 0.5)
  return { kind: 'ratio', name, ratios, min, median, goal: { op: '>=', value: goal }, pass: median >= goal }
}

/** An absolute check (a latency, a size): `op` is '<=' or '>='. */
export function absoluteCheck (name, value, unit, { op, target }) {
  const pass = op === '<=' ? value <= target : value >= target
  return { kind: 'absolute', name, value, unit, goal: { op, value: target }, pass }
}

const fmt = (n) => Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(3)).toString()

/**
 * Prints the row and its machine-readable line; a missed goal makes the process exit non-zero.
 * @param {{ id: string, title: string, measures: { name: string, unit: string, samples: number[] }[],
 *   checks: ReturnType<typeof ratioCheck | typeof absoluteCheck>[], notes?: string[] }} row
 */
export function emit (row) {
  console.log(`\n${row.title}`)
  for (const m of row.measures) {
    console.log(`  ${m.name.padEnd(52)} ${m.samples.map(fmt).join(', ')} ${m.unit}`)
  }
  for (const c of row.checks) {
    const verdict = c.pass ? 'PASS' : 'FAIL'
    const shown = c.kind === 'ratio'
      ? `min ${c.min.toFixed(2)} / median ${c.median.toFixed(2)}`
      : `${fmt(c.value)} ${c.unit}`
    console.log(`  ${c.name.padEnd(52)} ${shown} (goal ${c.goal.op} ${c.goal.value}) ${verdict}`)
  }
  for (const note of row.notes ?? []) console.log(`  note: ${note}`)
  console.log(`BENCH_RESULT ${JSON.stringify({ ...row, measuredAt: new Date().toISOString() })}`)
  if (row.checks.some((c) => !c.pass)) process.exitCode = 1
}
