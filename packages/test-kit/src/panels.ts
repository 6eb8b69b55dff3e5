import type { RunningPrometheus, Series } from './prometheus.js'

/** The parts of a Grafana dashboard JSON that say what to query and how to draw it. */
export interface Dashboard {
  panels: Array<{
    title: string
    fieldConfig?: { defaults?: { unit?: string } }
    targets: Array<{ expr: string, legendFormat?: string }>
  }>
  templating?: { list: Array<{ name: string, type: string, current?: { value?: string } }> }
}

/** What Grafana puts in for its interval variables: all from the scrape interval and the query step. */
export interface QueryIntervals { scrapeSeconds: number, stepSeconds: number, rangeSeconds: number }

export interface PanelQuery { panel: string, legend: string, expr: string }

/**
 * Every target of every panel as Prometheus gets it from Grafana: `$__rate_interval` as Grafana computes it
 * (max of step + scrape interval and four scrape intervals), `$__interval`, `$__range`, and the dashboard's
 * template variables at their current values. A variable left over is an error, not a silent empty panel.
 */
export function panelQueries (dashboard: Dashboard, intervals: QueryIntervals): PanelQuery[] {
  const { scrapeSeconds, stepSeconds, rangeSeconds } = intervals
  const builtIn: Record<string, string> = {
    __rate_interval: `${Math.max(stepSeconds + scrapeSeconds, 4 * scrapeSeconds)}s`,
    __interval: `${stepSeconds}s`,
    __range: `${rangeSeconds}s`,
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.current?.value !== undefined) builtIn[variable.name] = variable.current.value
  }
  return dashboard.panels.flatMap((panel) => panel.targets.map((target) => {
    const expr = target.expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => {
      const value = builtIn[name]
      if (value === undefined) throw new Error(`panel ${panel.title}: no value for ${whole} in ${target.expr}`)
      return value
    })
    return { panel: panel.title, legend: target.legendFormat ?? '', expr }
  }))
}

/** A series' name as Grafana's legend format writes it: `{{label}}` replaced by the label's value. */
export function legendName (format: string, metric: Record<string, string>): string {
  const name = format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_whole, label: string) => metric[label] ?? '')
  return name.trim() === '' ? JSON.stringify(metric) : name
}

export interface PanelLine { name: string, points: Array<[number, number]> }
export interface PanelData { title: string, unit: string, lines: PanelLine[] }

/** Every panel's targets over [start, end] from Prometheus, as lines of finite points. */
export async function panelData (
  prometheus: RunningPrometheus, dashboard: Dashboard, start: number, end: number, intervals: QueryIntervals
): Promise<PanelData[]> {
  const queries = panelQueries(dashboard, intervals)
  return Promise.all(dashboard.panels.map(async (panel) => {
    const own = queries.filter((query) => query.panel === panel.title)
    const lines = (await Promise.all(own.map(async (query) => {
      const series: Series[] = await prometheus.queryRange(query.expr, start, end, intervals.stepSeconds)
      return series.map((one) => ({
        name: legendName(query.legend, one.metric),
        points: (one.values ?? []).map(([time, value]): [number, number] => [time, Number(value)])
          .filter(([, value]) => Number.isFinite(value)),
      }))
    }))).flat()
    return { title: panel.title, unit: panel.fieldConfig?.defaults?.unit ?? '', lines }
  }))
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf']
const escape = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)

/** A readable number in the panel's Grafana unit (bytes, seconds, per second, plain). */
function formatValue (value: number, unit: string): string {
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB']
    let size = value
    let index = 0
    while (size >= 1024 && index < units.length - 1) { size /= 1024; index += 1 }
    return `${size.toFixed(size < 10 && index > 0 ? 1 : 0)} ${units[index]}`
  }
  const plain = Math.abs(value) >= 100 ? value.toFixed(0) : Number(value.toPrecision(3)).toString()
  if (unit === 's') return value < 1 && value > 0 ? `${Number((value * 1000).toPrecision(3))} ms` : `${plain} s`
  if (unit === 'reqps' || unit === 'ops') return `${plain}/s`
  return plain
}

const WIDTH = 420
const HEIGHT = 230
const PLOT = { left: 56, top: 30, width: WIDTH - 72, height: 120 }

function panelSvg (panel: PanelData, start: number, end: number): string {
  const values = panel.lines.flatMap((line) => line.points.map(([, value]) => value))
  const top = Math.max(...values, 0) || 1
  const x = (time: number) => PLOT.left + (time - start) / Math.max(end - start, 1) * PLOT.width
  const y = (value: number) => PLOT.top + PLOT.height - value / top * PLOT.height
  const lines = panel.lines.map((line, index) => {
    const colour = COLOURS[index % COLOURS.length]
    const points = line.points.map(([time, value]) => `${x(time).toFixed(1)},${y(value).toFixed(1)}`).join(' ')
    return `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points}"/>`
  })
  const legend = panel.lines.slice(0, 6).map((line, index) => {
    const row = PLOT.top + PLOT.height + 20 + Math.floor(index / 2) * 14
    const column = PLOT.left + (index % 2) * 175
    const last = line.points.at(-1)?.[1]
    const label = `${line.name.slice(0, 22)}${last === undefined ? '' : ` ${formatValue(last, panel.unit)}`}`
    return `<rect x="${column}" y="${row - 8}" width="8" height="8" fill="${COLOURS[index % COLOURS.length]}"/>` +
      `<text x="${column + 12}" y="${row}" font-size="10">${escape(label)}</text>`
  })
  const more = panel.lines.length > 6
    ? `<text x="${WIDTH - 8}" y="${HEIGHT - 6}" font-size="10" text-anchor="end">` +
    `+${panel.lines.length - 6} more</text>`
    : ''
  const empty = panel.lines.length === 0
    ? `<text x="${WIDTH / 2}" y="${PLOT.top + 60}" text-anchor="middle">no data</text>`
    : ''
  return `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff" stroke="#ccc"/>` +
    `<text x="8" y="18" font-size="12" font-weight="bold">${escape(panel.title)}</text>` +
    `<line x1="${PLOT.left}" y1="${PLOT.top + PLOT.height}" x2="${PLOT.left + PLOT.width}" ` +
    `y2="${PLOT.top + PLOT.height}" stroke="#999"/>` +
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.top + PLOT.height}" stroke="#999"/>` +
    `<text x="${PLOT.left - 4}" y="${PLOT.top + 4}" font-size="10" text-anchor="end">` +
    `${formatValue(top, panel.unit)}</text>` +
    `<text x="${PLOT.left - 4}" y="${PLOT.top + PLOT.height}" font-size="10" text-anchor="end">0</text>` +
    `<text x="${PLOT.left + PLOT.width}" y="${PLOT.top + PLOT.height + 10}" font-size="9" text-anchor="end">` +
    `${Math.round(end - start)} s</text>` +
    lines.join('') + legend.join('') + more + empty
}

/** A grid of small charts, one per panel, as one SVG document: the panels' data, drawn without Grafana. */
export function panelsSvg (panels: PanelData[], start: number, end: number, caption: string): string {
  const columns = 3
  const rows = Math.ceil(panels.length / columns)
  const cells = panels.map((panel, index) => {
    const left = (index % columns) * (WIDTH + 10) + 10
    const top = Math.floor(index / columns) * (HEIGHT + 10) + 34
    return `<g transform="translate(${left},${top})">${panelSvg(panel, start, end)}</g>`
  })
  const width = columns * (WIDTH + 10) + 10
  const height = rows * (HEIGHT + 10) + 44
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="#f4f5f5"/>` +
    `<text x="10" y="22" font-size="14">${escape(caption)}</text>${cells.join('')}</svg>`
}
