/** One sample of a Prometheus text exposition: `name{label="value",...} 12`. */
export interface MetricSample { name: string, labels: Record<string, string>, value: number }

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** The samples of a Prometheus text exposition (comments and HELP/TYPE lines left out). */
export function parseMetrics (text: string): MetricSample[] {
  return text.split('\n').flatMap((line) => {
    const match = SAMPLE.exec(line)
    if (match === null) return []
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(LABEL)].map(([, key, value]) => [key, value]))
    return [{ name: match[1] as string, labels, value: Number(match[3]) }]
  })
}

/** GET <url>/metrics, parsed. */
export async function scrapeMetrics (url: string): Promise<MetricSample[]> {
  const response = await fetch(`${url}/metrics`)
  if (!response.ok) throw new Error(`GET ${url}/metrics answered ${response.status}`)
  return parseMetrics(await response.text())
}

/** The metric names of an exposition, from its TYPE lines (histograms by their base name). */
export function metricNames (text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1] as string))
}
