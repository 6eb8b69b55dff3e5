// A real Prometheus (built from the Go module proxy) scrapes the five roles on the test broker, evaluates the
// chart's PrometheusRule and answers every query of the chart's Grafana dashboard with data.
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t from 'tap'
import { chromiumPage } from '@pagestream/test-kit/browser'
import { one, renderChart } from '@pagestream/test-kit/helm'
import { type Dashboard, panelData, panelQueries, panelsSvg } from '@pagestream/test-kit/panels'
import { type RunningPrometheus, startPrometheus } from '@pagestream/test-kit/prometheus'
import {
  ROOT, type RunningRole, deleteTopics, startRole, uniqueName, waitFor, writeRecords,
} from '@pagestream/test-kit'

const RELEASE = 'demo'
const NAMESPACE = 'pagestream'
const SCRAPE_SECONDS = 1
/** Where the screenshot of the panels goes; PAGESTREAM_PANELS_PNG=docs/observe-panels.png refreshes the README's. */
const SCREENSHOT = join(ROOT, process.env.PAGESTREAM_PANELS_PNG ?? join('test-artifacts', 'observe-panels.png'))

interface Rule { alert: string, expr: string }

t.test('a real Prometheus scrapes every role, evaluates the alerts, and every dashboard query has data',
  async (t) => {
    const objects = await renderChart({
      release: RELEASE,
      namespace: NAMESPACE,
      set: ['metrics.prometheusRule.enabled=true', 'metrics.grafanaDashboard.enabled=true'],
    })
    const ruleGroups = one(objects, 'PrometheusRule', `${RELEASE}-pagestream`).spec.groups as Array<{ rules: Rule[] }>
    const dashboard = JSON.parse(
      one(objects, 'ConfigMap', `${RELEASE}-pagestream-dashboard`).data['pagestream.json']) as Dashboard

    const [input, output, clicks, windows] = ['obs-r1', 'obs-r3', 'obs-r2', 'obs-r4'].map(uniqueName) as
      [string, string, string, string]
    const group = uniqueName('obs')
    t.teardown(() => deleteTopics([input, `${input}.dlq`, output, clicks, `${clicks}.dlq`, `${clicks}.late`, windows,
      `${group}-an-windows-changelog`, `${group}-an-repartition`]))
    const common = { KAFKA_TOPIC_PARTITIONS: '2', LOG_LEVEL: 'warn' }
    const roles: Array<[string, Record<string, string>]> = [
      ['producer', { PRODUCER_TOPICS: `${input},${clicks}` }],
      ['consumer', { CONSUMER_TOPIC: input, CONSUMER_GROUP_ID: `${group}-cons` }],
      ['transformer', {
        TRANSFORMER_INPUT_TOPIC: input, TRANSFORMER_OUTPUT_TOPIC: output, TRANSFORMER_GROUP_ID: `${group}-tr`,
      }],
      ['analytics', {
        ANALYTICS_INPUT_TOPIC: clicks,
        ANALYTICS_OUTPUT_TOPIC: windows,
        ANALYTICS_GROUP_ID: `${group}-an`,
        WINDOW_SIZE_MS: '1000',
        WINDOW_GRACE_MS: '0',
      }],
      ['supplier', { SUPPLIER_TOPIC: clicks, SUPPLIER_INTERVAL_MS: '200' }],
    ]
    const running = new Map<string, RunningRole>()
    // one after the other: five roles starting at once on a busy two-core machine miss the ready deadline
    for (const [role, env] of roles) {
      running.set(role, await startRole(t, role, { ...common, ...env }, { readyTimeoutMs: 90_000 }))
    }
    const url = (role: string) => (running.get(role) as RunningRole).url

    // labelled as the prometheus-operator labels a ServiceMonitor's targets, so the chart's rules match them
    const prometheus = await startPrometheus(t, {
      interval: `${SCRAPE_SECONDS}s`,
      ruleGroups,
      jobs: [...running].map(([role, { port }]) => ({
        job: `${RELEASE}-pagestream-${role}`,
        targets: [`127.0.0.1:${port}`],
        labels: {
          namespace: NAMESPACE, pod: `${RELEASE}-pagestream-${role}-0`, service: `${RELEASE}-pagestream-${role}`,
        },
      })),
    })

    // scraped once before any traffic, so every counter's first increase is seen by rate()
    const targets = await waitFor('every role scraped and up', async () => {
      const found = await prometheus.targets()
      return found.length === roles.length && found.every((target) => target.health === 'up') && found
    }, 30_000, 500)
    t.same(targets.map((target) => target.labels.job).sort(),
      roles.map(([role]) => `${RELEASE}-pagestream-${role}`).sort(), 'one job per role, like a ServiceMonitor\'s')
    const started = Date.now() / 1000
    // traffic of every kind the panels show: publishes, a refusal, a dashboard client, a late event, poison records
    const dashboardClient = new AbortController()
    t.teardown(() => { dashboardClient.abort() })
    const sse = await fetch(`${url('analytics')}/analytics`, { signal: dashboardClient.signal })
    t.equal(sse.status, 200, 'an SSE client on /analytics')
    for (let n = 0; n < 10; n += 1) {
      t.equal((await fetch(`${url('producer')}/publish/${input}/page-${n % 3}`)).status, 200)
    }
    // and a steady trickle for the rest of the run, so the rate and latency panels draw lines
    let published = 10
    const trickle = setInterval(() => {
      published += 1
      void fetch(`${url('producer')}/publish/${input}/page-${published % 3}`).catch(() => {})
    }, 250)
    t.teardown(() => { clearInterval(trickle) })
    t.equal((await fetch(`${url('producer')}/publish/not-allowed/x`)).status, 403, 'a refused topic')
    const late = await fetch(`${url('producer')}/events/${clicks}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'P1', user: 'U1', date: new Date(Date.now() - 3_600_000).toISOString(), duration: 1,
      }),
    })
    t.equal(late.status, 200, 'an event an hour late')
    await writeRecords(input, [{ key: 'x', value: 'not a page event' }])
    await writeRecords(clicks, [{ key: 'x', value: '{"name":' }])

    const queries = panelQueries(dashboard, { scrapeSeconds: SCRAPE_SECONDS, stepSeconds: 1, rangeSeconds: 300 })
    t.ok(queries.length >= 19, `${queries.length} queries in ${dashboard.panels.length} panels`)
    const emptyQueries = async (prometheus: RunningPrometheus) => {
      const answers = await Promise.all(queries.map(async (query) =>
        ({ query, series: await prometheus.query(query.expr) })))
      return answers.filter(({ series }) => series.length === 0).map(({ query }) => `${query.panel}: ${query.expr}`)
    }
    let empty: string[] = []
    await waitFor('every dashboard query to return data', async () => {
      empty = await emptyQueries(prometheus)
      return empty.length === 0
    }, 90_000, 1_000).catch(() => {})
    t.same(empty, [], `every one of ${queries.length} dashboard queries returns a non-empty result`)

    let firing: string[] = []
    await waitFor('PagestreamDeadLetters to fire for the poison records', async () => {
      firing = (await prometheus.alerts())
        .filter((alert) => alert.labels.alertname === 'PagestreamDeadLetters' && alert.state === 'firing')
        .map((alert) => alert.labels.role ?? '').sort()
      return firing.length >= 3
    }, 60_000, 1_000).catch(() => {})
    t.same(firing, ['analytics', 'consumer', 'transformer'], 'PagestreamDeadLetters fires for each role that ' +
      'dead-lettered a record')

    const rules = await waitFor('every rule evaluated', async () => {
      const found = await prometheus.rules()
      return found.every((rule) => rule.health !== 'unknown') && found
    }, 30_000, 500)
    t.same(rules.map((rule) => rule.name).sort(), ruleGroups.flatMap((g) => g.rules.map((r) => r.alert)).sort(),
      'Prometheus loaded every rule of the PrometheusRule')
    t.same(rules.filter((rule) => rule.health !== 'ok').map((rule) => `${rule.name}: ${rule.lastError}`), [],
      'every rule evaluates without error')
    const active = new Set((await prometheus.alerts()).map((alert) => alert.labels.alertname))
    t.notOk(active.has('PagestreamRoleDown') || active.has('PagestreamRoleNotReady'), 'every role up and ready')
    t.same((await prometheus.query(`pagestream_ready{namespace="${NAMESPACE}"}`)).map((s) => s.value?.[1]),
      roles.map(() => '1'), 'pagestream_ready 1 for each role')

    // the panels' data over the run (at least 30 scrapes, so the lines have a length), drawn without Grafana
    await waitFor('30 scrapes of every role', async () => (await prometheus.query(
      `min(count_over_time(up{namespace="${NAMESPACE}"}[5m])) >= 30`)).length === 1, 60_000, 1_000)
    const ended = Date.now() / 1000
    const panels = await panelData(prometheus, dashboard, started, ended,
      { scrapeSeconds: SCRAPE_SECONDS, stepSeconds: 1, rangeSeconds: Math.ceil(ended - started) })
    t.same(panels.filter((panel) => panel.lines.every((line) => line.points.length === 0)).map((p) => p.title), [],
      'every panel has points to draw')
    const svg = panelsSvg(panels, started, ended, 'pagestream dashboard panels: data of a real Prometheus ' +
      `(${Math.round(ended - started)} s, 5 roles on a test broker), drawn without Grafana`)
    const page = await chromiumPage(t, { width: 1310, height: 800 })
    await page.setContent(`<!doctype html><body style="margin:0">${svg}</body>`)
    mkdirSync(dirname(SCREENSHOT), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
  })
