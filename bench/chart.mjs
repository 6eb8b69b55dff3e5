// The bench's chart as SVG text, no dependency: one horizontal bar per check, its length how far the
// measured median (or value) is towards the goal (measured / goal, or goal / measured when lower is
// better), the goal as a vertical line at 1, green when met and red when not, the figures written beside.

const WIDTH = 900
const LABEL = 330
const BAR = 22
const GAP = 10
const SCALE_MAX = 2 // bars end at twice the goal

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ENTITIES[c])
const fmt = (n) => Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(3)).toString()

/** How far a check is towards its goal: 1 is exactly the goal, above 1 better than it. */
export function attainment (check) {
  const value = check.kind === 'ratio' ? check.median : check.value
  if (!Number.isFinite(value)) return 0
  if (check.goal.op === '>=') return value / check.goal.value
  return value <= 0 ? SCALE_MAX : check.goal.value / value
}

/** @param {{ id: string, checks: any[] }[]} rows @param {string} subtitle */
export function chartSvg (rows, subtitle) {
  const checks = rows.flatMap((row) => row.checks.map((check) => ({ row: row.id, check })))
  const top = 56
  const height = top + checks.length * (BAR + GAP) + 40
  const plot = WIDTH - LABEL - 190
  const x = (a) => LABEL + Math.min(a, SCALE_MAX) / SCALE_MAX * plot
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
      'font-family="sans-serif" font-size="12">',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    '<text x="10" y="22" font-size="16" font-weight="bold">make bench: each check against its goal</text>',
    `<text x="10" y="40" fill="#555">${escape(subtitle)}</text>`,
  ]
  checks.forEach(({ row, check }, i) => {
    const y = top + i * (BAR + GAP)
    const a = attainment(check)
    const shown = check.kind === 'ratio'
      ? `median ${check.median.toFixed(2)} (min ${check.min.toFixed(2)})`
      : `${fmt(check.value)} ${check.unit}`
    parts.push(
      `<text x="${LABEL - 8}" y="${y + 15}" text-anchor="end">${escape(`${row}: ${check.name}`)}</text>`,
      `<rect x="${LABEL}" y="${y}" width="${Math.max(1, x(a) - LABEL).toFixed(1)}" height="${BAR}" ` +
        `fill="${check.pass ? '#2e7d32' : '#c62828'}"/>`,
      `<text x="${(x(a) + 6).toFixed(1)}" y="${y + 15}">` +
        `${escape(`${shown}, goal ${check.goal.op} ${check.goal.value}`)}</text>`
    )
  })
  const bottom = top + checks.length * (BAR + GAP)
  parts.push(
    `<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${bottom}" stroke="#000" stroke-dasharray="4 3"/>`,
    `<text x="${x(1)}" y="${bottom + 16}" text-anchor="middle">goal</text>`,
    `<text x="${LABEL}" y="${bottom + 16}" text-anchor="middle">0</text>`,
    `<text x="${x(SCALE_MAX)}" y="${bottom + 16}" text-anchor="middle">2 × goal</text>`,
    '</svg>'
  )
  return `${parts.join('\n')}\n`
}
