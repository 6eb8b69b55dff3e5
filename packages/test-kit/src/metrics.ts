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

/** The series names an exposition's TYPE lines promise: a histogram's _bucket, _sum and _count too. */
export function metricNames (text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap(([, name = '', type]) =>
    type === 'histogram' || type === 'summary'
      ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]
      : [name]))
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset'])

/** The metric names a PromQL expression reads (label matchers, ranges, grouping and functions left out). */
export function promqlMetrics (expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  return [...bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((match) => match[1] as string)
    .filter((word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word))
}
