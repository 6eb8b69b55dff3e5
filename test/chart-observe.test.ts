// The chart's Prometheus and Grafana objects: rendered by helm, validated against the pinned
// prometheus-operator CRDs and Kubernetes schemas, and every metric they query exported by the roles.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { type KubeObject, find, one, renderChart } from '@pagestream/test-kit/helm'
import { kubernetesValidator } from '@pagestream/test-kit/kube-schema'
import { monitoringValidator } from '@pagestream/test-kit/monitoring-schema'
import { checkRules } from '@pagestream/test-kit/promtool'
import { stringify } from 'yaml'
import { ROOT, deleteTopics, metricNames, promqlMetrics, startRole, uniqueName } from '@pagestream/test-kit'

const RELEASE = 'demo'
const NAMESPACE = 'pagestream'
const ALL_ON = ['metrics.serviceMonitor.enabled=true', 'metrics.podMonitor.enabled=true',
  'metrics.prometheusRule.enabled=true', 'metrics.grafanaDashboard.enabled=true']
/** Series Prometheus makes itself, not the roles. */
const PROMETHEUS_OWN = new Set(['up'])

interface Dashboard { panels: Array<{ title: string, targets: Array<{ expr: string }> }> }

let objects: KubeObject[]
t.before(async () => {
  objects = await renderChart({ set: ALL_ON, release: RELEASE, namespace: NAMESPACE })
})

const alerts = () => one(objects, 'PrometheusRule', `${RELEASE}-pagestream`).spec.groups
  .flatMap((group: { rules: Array<{ alert: string, expr: string }> }) => group.rules)
const dashboard = (): Dashboard =>
  JSON.parse(one(objects, 'ConfigMap', `${RELEASE}-pagestream-dashboard`).data['pagestream.json']) as Dashboard

t.test('off by default: no ServiceMonitor, PodMonitor, PrometheusRule or dashboard ConfigMap', async (t) => {
  const plain = await renderChart({ release: RELEASE, namespace: NAMESPACE })
  t.same(find(plain, 'ServiceMonitor'), [])
  t.same(find(plain, 'PodMonitor'), [])
  t.same(find(plain, 'PrometheusRule'), [])
  t.notOk(plain.some((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard !== undefined))
})

t.test('the objects are valid against the pinned prometheus-operator CRDs and Kubernetes schemas', async (t) => {
  const [crds, kube] = await Promise.all([monitoringValidator(), kubernetesValidator()])
  const monitoring = objects.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))
  t.same(monitoring.map((o) => o.kind).sort(), ['PodMonitor', 'PrometheusRule', 'ServiceMonitor'])
  t.same(monitoring.flatMap((o) => crds.validate(o)), [], `valid for prometheus-operator ${crds.version}`)
  const typo = { ...one(objects, 'ServiceMonitor', `${RELEASE}-pagestream`) }
  typo.spec = { ...typo.spec, endpoint: [] }
  t.match(crds.validate(typo), [/endpoint/], 'the validator rejects a field the CRD does not know')
  const podTypo = { ...one(objects, 'PodMonitor', `${RELEASE}-pagestream`) }
  podTypo.spec = { ...podTypo.spec, podMetricsEndpoints: [{ port: 'http', scheme: 'htp' }] }
  t.match(crds.validate(podTypo), [/scheme/], 'and a PodMonitor value the CRD does not allow')
  t.same(kube.validate(one(objects, 'ConfigMap', `${RELEASE}-pagestream-dashboard`)), [])
})

t.test('the ServiceMonitor selects every role Service, on its /metrics port, and nothing else', async (t) => {
  const monitor = one(objects, 'ServiceMonitor', `${RELEASE}-pagestream`)
  const { matchLabels, matchExpressions } = monitor.spec.selector
  const selected = find(objects, 'Service').filter((service) => {
    const labels = service.metadata.labels ?? {}
    return Object.entries(matchLabels as Record<string, string>).every(([key, value]) => labels[key] === value) &&
      (matchExpressions as Array<{ key: string, values: string[] }>)
        .every((e) => e.values.includes(labels[e.key] ?? ''))
  })
  const roles = selected.map((service) => service.metadata.labels?.['app.kubernetes.io/component']).sort()
  t.same(roles, ['analytics', 'consumer', 'producer', 'supplier', 'transformer'])
  t.ok(selected.every((service) => service.spec.ports.some((p: { name: string }) => p.name === 'http')))
  t.same(monitor.spec.endpoints.map((e: { port: string, path: string }) => [e.port, e.path]), [['http', '/metrics']])
})

t.test('the dashboard has the panels an operator looks at, the chart and deploy/ hold one copy', async (t) => {
  const copy = readFileSync(join(ROOT, 'deploy', 'grafana', 'pagestream.json'), 'utf8')
  t.same(JSON.parse(copy), dashboard())
  const titles = dashboard().panels.map((p) => p.title).join('\n')
  for (const topic of [/Publish rate/, /4xx, 5xx, 503/, /Ack latency/, /Consumer lag/, /committed and aborted/,
    /Dead letters and late/, /SSE clients/, /restore time/, /memory/]) t.match(titles, topic)
})

t.test('the PodMonitor selects every role\'s pods by their http container port, and nothing else', async (t) => {
  const monitor = one(objects, 'PodMonitor', `${RELEASE}-pagestream`)
  const { matchLabels, matchExpressions } = monitor.spec.selector
  const workloads = objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind))
  const selected = workloads.filter((workload) => {
    const labels: Record<string, string> = workload.spec.template.metadata.labels ?? {}
    return Object.entries(matchLabels as Record<string, string>).every(([key, value]) => labels[key] === value) &&
      (matchExpressions as Array<{ key: string, values: string[] }>)
        .every((e) => e.values.includes(labels[e.key] ?? ''))
  })
  const roles = selected.map((w) => w.spec.template.metadata.labels['app.kubernetes.io/component']).sort()
  t.same(roles, ['analytics', 'consumer', 'producer', 'supplier', 'transformer'])
  t.ok(selected.every((w) => w.spec.template.spec.containers[0].ports.some((p: { name: string }) => p.name === 'http')))
  t.same(monitor.spec.podMetricsEndpoints.map((e: { port: string, path: string }) => [e.port, e.path]),
    [['http', '/metrics']])
  t.same(monitor.spec.namespaceSelector, { matchNames: [NAMESPACE] })
})

t.test('the role-not-ready alert reads pagestream_ready; the role-down alert matches both monitors\' jobs',
  async (t) => {
    const byName = new Map(alerts().map((rule: { alert: string, expr: string }) => [rule.alert, rule.expr]))
    t.match(byName.get('PagestreamRoleNotReady'), /pagestream_ready\{namespace="pagestream"\}\) == 0/)
    const down = byName.get('PagestreamRoleDown') as string
    const jobs = new RegExp(`^(?:${/job=~"([^"]+)"/.exec(down)?.[1]})$`)
    t.ok(jobs.test(`${RELEASE}-pagestream-producer`), 'a ServiceMonitor job: the Service name')
    t.ok(jobs.test(`${NAMESPACE}/${RELEASE}-pagestream`), 'a PodMonitor job: <namespace>/<name>')
    t.notOk(jobs.test('kube-state-metrics'))
  })

t.test('promtool accepts the rules, and refuses a broken expression', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pagestream-rules-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const spec = one(objects, 'PrometheusRule', `${RELEASE}-pagestream`).spec
  const file = join(dir, 'rules.yaml')
  writeFileSync(file, stringify(spec))
  const checked = await checkRules(file)
  t.equal(checked.code, 0, checked.output)
  t.match(checked.output, new RegExp(`SUCCESS: ${alerts().length} rules found`))
  const broken = join(dir, 'broken.yaml')
  writeFileSync(broken, stringify({ groups: [{ name: 'x', rules: [{ alert: 'X', expr: 'sum(rate(up[5m])' }] }] }))
  t.not((await checkRules(broken)).code, 0, 'a parse error fails the check')
})

t.test('every alert has a runbook line in the README', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Observe it'))
  for (const { alert } of alerts()) t.match(section, `**${alert}**`, alert)
})

t.test('every metric the rules and the dashboard query is one the running roles export', async (t) => {
  const topic = uniqueName('obs-r1')
  const group = uniqueName('obs')
  const [output, windows] = [uniqueName('obs-r3'), uniqueName('obs-r4')]
  t.teardown(() => deleteTopics([topic, `${topic}.dlq`, `${topic}.late`, output, windows,
    `${group}-an-windows-changelog`, `${group}-an-repartition`]))
  const common = { KAFKA_TOPIC_PARTITIONS: '1', LOG_LEVEL: 'warn' }
  const roles: Array<[string, Record<string, string>]> = [
    ['producer', {}],
    ['consumer', { CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: `${group}-cons` }],
    ['transformer', {
      TRANSFORMER_INPUT_TOPIC: topic, TRANSFORMER_OUTPUT_TOPIC: output, TRANSFORMER_GROUP_ID: `${group}-tr`,
    }],
    ['analytics', {
      ANALYTICS_INPUT_TOPIC: topic, ANALYTICS_OUTPUT_TOPIC: windows, ANALYTICS_GROUP_ID: `${group}-an`,
    }],
  ]
  const running = []
  // one after the other: four roles starting at once on a busy two-core machine miss the ready deadline
  for (const [role, env] of roles) {
    running.push(await startRole(t, role, { ...common, ...env }, { readyTimeoutMs: 90_000 }))
  }
  const exported = new Set<string>(PROMETHEUS_OWN)
  for (const role of running) {
    for (const name of metricNames(await (await fetch(`${role.url}/metrics`)).text())) exported.add(name)
  }
  const queries = [
    ...alerts().map((rule: { alert: string, expr: string }) => ({ where: `alert ${rule.alert}`, expr: rule.expr })),
    ...dashboard().panels.flatMap((p) => p.targets.map((target) => ({ where: `panel ${p.title}`, expr: target.expr }))),
  ]
  const unknown = queries.flatMap(({ where, expr }) =>
    promqlMetrics(expr).filter((name) => !exported.has(name)).map((name) => `${where}: ${name}`))
  t.same(unknown, [], `${queries.length} queries, every metric exported`)
  t.ok(queries.every(({ expr }) => promqlMetrics(expr).length > 0), 'every query reads a metric')
})
