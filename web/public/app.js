// The live dashboard: two event streams of the analytics role, one Smoothie series per page.
// Plain ES module, no inline script or style: the page is served with a strict CSP.

const { SmoothieChart, TimeSeries } = window

const STREAMS = {
  count: '/analytics',
  duration: '/analyticsAggregate',
}
const PALETTE = [
  '#4e9af1', '#f1a24e', '#5ac26b', '#e05a6b', '#a77be0', '#3fc5c0', '#d9c74a', '#ef7fc2', '#9aa4b1', '#7fd17f',
]
const MAX_RECONNECT_DELAY_MS = 30_000

const latest = { count: {}, duration: {} }
const series = { count: new Map(), duration: new Map() }
const colours = new Map()
const connections = {}
let measure = 'count'

const chart = new SmoothieChart({
  responsive: true,
  millisPerPixel: 40,
  interpolation: 'linear',
  minValue: 0,
  maxValueScale: 1.1,
  grid: { fillStyle: '#101014', strokeStyle: '#2a2a33', verticalSections: 4, millisPerLine: 5000 },
  labels: { fillStyle: '#d0d0d8', precision: 0 },
  timestampFormatter: SmoothieChart.timeFormatter,
})
chart.streamTo(document.getElementById('chart'), 1000)

function colourOf (page) {
  if (!colours.has(page)) colours.set(page, PALETTE[colours.size % PALETTE.length])
  return colours.get(page)
}

function seriesOf (kind, page) {
  let timeSeries = series[kind].get(page)
  if (timeSeries === undefined) {
    timeSeries = new TimeSeries()
    series[kind].set(page, timeSeries)
    if (kind === measure) addToChart(page, timeSeries)
  }
  return timeSeries
}

function addToChart (page, timeSeries) {
  chart.addTimeSeries(timeSeries, { strokeStyle: colourOf(page), lineWidth: 2 })
}

function showMeasure (kind) {
  for (const timeSeries of series[measure].values()) chart.removeTimeSeries(timeSeries)
  measure = kind
  for (const [page, timeSeries] of series[measure]) addToChart(page, timeSeries)
}

/** What Smoothie keeps of the series it draws: the chart's width in time, behind its delay. */
function keptSpanMs () {
  const canvas = document.getElementById('chart')
  return Math.max(canvas.width, canvas.clientWidth) * chart.options.millisPerPixel + (chart.delay ?? 0)
}

/**
 * A snapshot of one stream: every page it lists gets a point; pages it no longer lists go away.
 * Smoothie drops old points only of the series it draws, so the series of the measure not shown
 * are trimmed here to what the chart would show when switched to, or they would grow for as long
 * as the page stays open.
 */
function applySnapshot (kind, values) {
  const now = Date.now()
  latest[kind] = values
  for (const [page, value] of Object.entries(values)) seriesOf(kind, page).append(now, value)
  for (const [page, timeSeries] of series[kind]) {
    if (page in values) continue
    if (kind === measure) chart.removeTimeSeries(timeSeries)
    series[kind].delete(page)
  }
  if (kind !== measure) {
    const oldest = now - keptSpanMs()
    for (const timeSeries of series[kind].values()) timeSeries.dropOldData(oldest, chart.options.maxDataSetLength)
  }
  renderTable()
}

function renderTable () {
  const pages = [...new Set([...Object.keys(latest.count), ...Object.keys(latest.duration)])].sort()
  const body = document.querySelector('#pages tbody')
  const rows = new Map([...body.rows].map((row) => [row.dataset.page, row]))
  for (const page of pages) {
    let row = rows.get(page)
    if (row === undefined) {
      row = body.insertRow()
      row.dataset.page = page
      const swatch = document.createElement('span')
      swatch.className = 'swatch'
      swatch.style.backgroundColor = colourOf(page)
      row.insertCell().append(swatch)
      row.insertCell().textContent = page
      const count = row.insertCell()
      count.className = 'number count'
      const duration = row.insertCell()
      duration.className = 'number duration'
    }
    row.querySelector('.count').textContent = String(latest.count[page] ?? 0)
    row.querySelector('.duration').textContent = String(latest.duration[page] ?? 0)
    body.append(row)
    rows.delete(page)
  }
  for (const row of rows.values()) row.remove()
  document.getElementById('empty').hidden = pages.length > 0
}

function renderConnection () {
  const states = Object.values(connections).map((c) => c.state)
  const state = states.every((s) => s === 'open')
    ? 'open'
    : states.includes('closed')
      ? 'closed'
      : states.includes('reconnecting') ? 'reconnecting' : 'connecting'
  const element = document.getElementById('connection')
  element.dataset.state = state
  const retry = Object.values(connections).find((c) => c.state === 'closed')
  element.textContent = state === 'open'
    ? 'live'
    : state === 'closed'
      ? `disconnected, retrying in ${Math.round((retry?.delay ?? 0) / 1000)} s`
      : state === 'reconnecting' ? 'reconnecting…' : 'connecting…'
}

/**
 * EventSource reconnects by itself (with Last-Event-ID) after a dropped connection; when the server
 * refuses (for example 503 at its client limit) it gives up, and we open a new one with backoff.
 */
function connect (kind, attempt = 0) {
  const source = new EventSource(STREAMS[kind])
  const connection = { source, state: attempt === 0 ? 'connecting' : 'reconnecting', delay: 0 }
  connections[kind] = connection
  renderConnection()
  source.addEventListener('open', () => {
    attempt = 0
    connection.state = 'open'
    renderConnection()
  })
  source.addEventListener('message', (event) => {
    applySnapshot(kind, JSON.parse(event.data))
  })
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CONNECTING) {
      connection.state = 'reconnecting'
    } else {
      source.close()
      connection.state = 'closed'
      connection.delay = Math.min(MAX_RECONNECT_DELAY_MS, 1000 * 2 ** attempt)
      setTimeout(() => connect(kind, attempt + 1), connection.delay)
    }
    renderConnection()
  })
}

for (const input of document.querySelectorAll('input[name="measure"]')) {
  input.addEventListener('change', () => { if (input.checked) showMeasure(input.value) })
}
connect('count')
connect('duration')
renderTable()

// read-only view for tests and the curious: the newest point of every series
window.pagestream = {
  measure: () => measure,
  chartedPages: () => chart.seriesSet
    .map((entry) => [...series[measure]].find(([, s]) => s === entry.timeSeries)?.[0])
    .filter(Boolean)
    .sort(),
  lastValues: (kind) => Object.fromEntries([...series[kind]].map(([page, s]) => [page, s.data.at(-1)?.[1]])),
  points: (kind) => Math.min(...[...series[kind].values()].map((s) => s.data.length)),
  /** Time from the oldest to the newest point held, over the series of a measure (ms). */
  heldSpanMs: (kind) => Math.max(0, ...[...series[kind].values()]
    .map((s) => s.data.length > 0 ? s.data.at(-1)[0] - s.data[0][0] : 0)),
  keptSpanMs,
}
