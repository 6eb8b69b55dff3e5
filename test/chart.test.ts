// The Helm chart, proved without a cluster: helm lint, helm template of every ci scenario, every
// rendered object validated against the pinned Kubernetes OpenAPI schemas, and the properties the
// design asks for asserted on the rendered objects. Role settings come from the roles' own schemas.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse, parseDocument, isMap, isScalar, isSeq, type Node } from 'yaml'
import { ConfigError, loadConfig } from '@pagestream/core'
import { CHART, type KubeObject, find, helm, one, renderChart, renderNotes, scenarios } from '@pagestream/test-kit/helm'
import { type KubeValidator, kubernetesValidator } from '@pagestream/test-kit/kube-schema'
import { ROOT } from '@pagestream/test-kit'
import { ROLES, type RoleName, type RoleSchema, loadRoles, requiredVariables } from '@pagestream/test-kit/roles'

const run = promisify(execFile)
const RELEASE = 'demo'
const NAMESPACE = 'pagestream'
const fullname = `${RELEASE}-pagestream`
const SCENARIOS = scenarios()

let validator: KubeValidator
let roles: Map<RoleName, RoleSchema>
const rendered = new Map<string, KubeObject[]>()

t.before(async () => {
  [validator, roles] = await Promise.all([kubernetesValidator(), loadRoles()])
  for (const { name, file } of SCENARIOS) {
    rendered.set(name, await renderChart({ values: [file], release: RELEASE, namespace: NAMESPACE }))
  }
})

function scenario (name: string): KubeObject[] {
  const objects = rendered.get(name)
  if (objects === undefined) throw new Error(`no ci/${name}-values.yaml`)
  return objects
}

function scenarioValues (name: string): any {
  return parse(readFileSync(join(CHART, 'ci', `${name}-values.yaml`), 'utf8')) ?? {}
}

const deployments = (objects: KubeObject[]) => find(objects, 'Deployment')
const roleOf = (object: KubeObject) => object.metadata.labels?.['app.kubernetes.io/component'] as RoleName
const podSpecs = (objects: KubeObject[]): Array<{ owner: string, spec: any, metadata: any }> => [
  ...objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((o) => ({
      owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec, metadata: o.spec.template.metadata,
    })),
  ...find(objects, 'Pod').map((o) => ({ owner: `Pod/${o.metadata.name}`, spec: o.spec, metadata: o.metadata })),
]

/** The environment a role's container starts with: its ConfigMap (envFrom) and its env entries. */
function containerEnvironment (
  objects: KubeObject[],
  container: any
): { values: Record<string, string>, fromSecret: Record<string, { name: string, key: string }> } {
  const values: Record<string, string> = {}
  const fromSecret: Record<string, { name: string, key: string }> = {}
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(values, one(objects, 'ConfigMap', source.configMapRef.name).data)
    if (source.secretRef) throw new Error('envFrom a Secret hides which variables come from it')
  }
  for (const entry of container.env ?? []) {
    if (entry.valueFrom?.secretKeyRef) fromSecret[entry.name] = entry.valueFrom.secretKeyRef
    else if (entry.value !== undefined) values[entry.name] = String(entry.value)
    else throw new Error(`env ${entry.name} has neither a value nor a secretKeyRef`)
  }
  return { values, fromSecret }
}

/** Kubernetes Ingress path matching for pathType Prefix: element-wise, longest path wins. */
function route (ingress: KubeObject, path: string): string | undefined {
  const matches = ingress.spec.rules.flatMap((rule: any) => rule.http.paths)
    .filter((p: any) => {
      if (p.pathType === 'Exact') return path === p.path
      if (p.pathType !== 'Prefix') {
        throw new Error(`${p.path} is ${p.pathType}; only Exact and Prefix paths are portable across controllers`)
      }
      const prefix = p.path.replace(/\/+$/, '')
      return prefix === '' || path === prefix || path.startsWith(`${prefix}/`)
    })
    // the longest path wins, and Exact beats Prefix at equal length (Kubernetes Ingress rules)
    .sort((a: any, b: any) => b.path.length - a.path.length || (a.pathType === 'Exact' ? -1 : 1))
  return matches[0]?.backend.service.name
}

/** What the restricted Pod Security Standard (v1.33) forbids in a pod, as readable problems. */
function restrictedViolations (spec: any): string[] {
  const problems: string[] = []
  const pod = spec.securityContext ?? {}
  const allowedVolumes = [
    'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret',
  ]
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('host namespaces')
  for (const volume of spec.volumes ?? []) {
    const type = Object.keys(volume).find((k) => k !== 'name')
    if (type === undefined || !allowedVolumes.includes(type)) problems.push(`volume ${volume.name} of type ${type}`)
  }
  for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = container.securityContext ?? {}
    const where = `container ${container.name}`
    if (sc.privileged) problems.push(`${where} privileged`)
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where} allows privilege escalation`)
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${where} may run as root`)
    if ((sc.runAsUser ?? pod.runAsUser) === 0) problems.push(`${where} runs as uid 0`)
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${where} seccomp ${seccomp}`)
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where} does not drop ALL capabilities`)
    for (const added of sc.capabilities?.add ?? []) {
      if (added !== 'NET_BIND_SERVICE') problems.push(`${where} adds ${added}`)
    }
    for (const port of container.ports ?? []) if (port.hostPort) problems.push(`${where} hostPort ${port.hostPort}`)
  }
  return problems
}

t.test('helm lint --strict passes for every ci scenario', async (t) => {
  t.ok(SCENARIOS.length >= 5, `scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  for (const name of ['default', 'kind', 'production', 'external-brokers', 'hpa']) {
    t.ok(SCENARIOS.some((s) => s.name === name), `ci/${name}-values.yaml exists`)
  }
  for (const { name, file } of SCENARIOS) {
    const lint = await helm(['lint', '--strict', CHART, '--values', file])
    const findings = lint.stdout.split('\n').filter((l) => /\[(ERROR|WARNING)\]/.test(l)).join('; ')
    t.equal(lint.code, 0, `${name}: ${findings || 'lint clean'}`)
  }
})

t.test('every rendered object is valid against the Kubernetes schemas', async (t) => {
  t.equal(validator.version, '1.33.5')
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    const problems = objects.flatMap((object) => validator.validate(object))
    t.same(problems, [], `${name}: ${objects.length} objects`)
    for (const object of objects) {
      t.match(object.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${name}: ${object.kind} name is a DNS label`)
      t.ok(object.metadata.name.length <= 63, `${name}: ${object.metadata.name} fits 63 characters`)
    }
  }
})

t.test('the schema validation does fail on a wrong object', async (t) => {
  const deployment = structuredClone(one(scenario('default'), 'Deployment', `${fullname}-producer`))
  deployment.spec.replicas = 'two'
  deployment.spec.template.spec.containers[0].imagePullPolice = 'Always'
  delete deployment.spec.selector
  const problems = validator.validate(deployment).join('\n')
  t.match(problems, /\/spec\/replicas must be integer/)
  t.match(problems, /must NOT have additional properties \(imagePullPolice\)/)
  t.match(problems, /must have required property 'selector'/)
  const removedKind = { apiVersion: 'extensions/v1beta1', kind: 'Ingress', metadata: { name: 'old' } }
  t.match(validator.validate(removedKind), [/not a kind of Kubernetes 1.33.5/])
})

t.test('one Deployment, Service, ConfigMap and PodDisruptionBudget per enabled role', async (t) => {
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    const values = scenarioValues(name)
    const enabled = ROLES.filter((role) => values.roles?.[role]?.enabled !== false)
    t.same(deployments(objects).map(roleOf).sort(), [...enabled].sort(), `${name}: Deployments`)
    for (const role of enabled) {
      for (const kind of ['Deployment', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'NetworkPolicy']) {
        one(objects, kind, `${fullname}-${role}`)
      }
      const deployment = one(objects, 'Deployment', `${fullname}-${role}`)
      t.same(deployment.spec.template.spec.containers[0].args, [role], `${name}: ${role} container runs its role`)
    }
    t.same(find(objects, 'Secret'), [], `${name}: the chart creates no Secret; credentials stay with the operator`)
  }
})

t.test('standard labels, and selectors that select what they should', async (t) => {
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    for (const object of objects) {
      const labels = object.metadata.labels ?? {}
      const standardLabels = [
        'app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version',
        'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of', 'helm.sh/chart',
      ]
      for (const label of standardLabels) {
        t.ok(labels[label], `${name}: ${object.kind}/${object.metadata.name} has ${label}`)
      }
      t.equal(labels['app.kubernetes.io/instance'], RELEASE)
    }
    for (const deployment of deployments(objects)) {
      const role = roleOf(deployment)
      const podLabels = deployment.spec.template.metadata.labels
      const selector = deployment.spec.selector.matchLabels
      t.same(selector, {
        'app.kubernetes.io/name': 'pagestream',
        'app.kubernetes.io/instance': RELEASE,
        'app.kubernetes.io/component': role,
      })
      t.match(podLabels, selector, `${name}: ${role} pods carry the selector labels`)
      const service = one(objects, 'Service', `${fullname}-${role}`)
      t.same(service.spec.selector, selector, `${name}: the ${role} Service selects the ${role} pods`)
      const others = deployments(objects).filter((d) => d !== deployment)
      const selects = (d: KubeObject) =>
        Object.entries(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v)
      t.notOk(others.some(selects), 'and no other role')
      t.same(one(objects, 'PodDisruptionBudget', `${fullname}-${role}`).spec.selector.matchLabels, selector)
      for (const constraint of deployment.spec.template.spec.topologySpreadConstraints ?? []) {
        t.same(constraint.labelSelector.matchLabels, selector, `${name}: ${role} pods spread among themselves`)
      }
      const container = deployment.spec.template.spec.containers[0]
      t.equal(service.spec.ports[0].targetPort, 'http')
      t.equal(
        container.ports.find((p: any) => p.name === 'http')?.containerPort,
        service.spec.ports[0].port,
        `${name}: ${role} Service port is the container's`
      )
    }
  }
})

t.test('every pod meets the restricted Pod Security Standard', async (t) => {
  for (const { name } of SCENARIOS) {
    const pods = podSpecs(scenario(name))
    t.ok(pods.length >= 5, `${name}: ${pods.length} pod templates`)
    for (const { owner, spec } of pods) {
      t.same(restrictedViolations(spec), [], `${name}: ${owner}`)
      t.equal(spec.automountServiceAccountToken, false, `${name}: ${owner} mounts no service-account token`)
      for (const container of spec.containers) {
        const where = `${name}: ${owner}/${container.name}`
        t.equal(container.securityContext.readOnlyRootFilesystem, true, `${where} read-only root FS`)
        t.ok(container.resources?.limits?.memory, `${where} has a memory limit`)
        t.ok(container.resources?.requests?.cpu, `${where} requests CPU`)
      }
    }
    for (const account of find(scenario(name), 'ServiceAccount')) t.equal(account.automountServiceAccountToken, false)
  }
  const badPod = {
    containers: [{ name: 'bad', securityContext: { runAsNonRoot: true, capabilities: { add: ['NET_ADMIN'] } } }],
    volumes: [{ name: 'h', hostPath: { path: '/' } }],
  }
  t.same(restrictedViolations(badPod), [
    'volume h of type hostPath',
    'container bad allows privilege escalation',
    'container bad seccomp undefined',
    'container bad does not drop ALL capabilities',
    'container bad adds NET_ADMIN',
  ], 'the check itself finds violations')
})

t.test('probes on the health endpoints, and a grace period longer than the shutdown timeout', async (t) => {
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    for (const deployment of deployments(objects)) {
      const spec = deployment.spec.template.spec
      const container = spec.containers[0]
      const where = `${name}: ${roleOf(deployment)}`
      t.match(container.startupProbe, { httpGet: { path: '/health/live', port: 'http' } }, `${where} startup probe`)
      t.match(container.livenessProbe, { httpGet: { path: '/health/live', port: 'http' } }, `${where} liveness probe`)
      t.match(container.readinessProbe, { httpGet: { path: '/health/ready', port: 'http' } },
        `${where} readiness probe`)
      const startupBudget = container.startupProbe.periodSeconds * container.startupProbe.failureThreshold
      t.ok(startupBudget >= 60, `${where} gets a minute to start`)
      t.match(deployment.spec.template.metadata.annotations, {
        'prometheus.io/scrape': 'true',
        'prometheus.io/path': '/metrics',
        'prometheus.io/port': String(container.ports[0].containerPort),
      }, `${where} is scraped on its own port`)
      const env = containerEnvironment(objects, container).values
      t.ok(
        spec.terminationGracePeriodSeconds * 1000 > Number(env.SHUTDOWN_TIMEOUT_MS),
        `${where} is killed only after its own shutdown timeout`
      )
    }
  }
})

t.test('every variable a role requires is set, every variable set is one the role knows, ' +
  'and the role accepts the values', async (t) => {
  for (const [role, schema] of roles) {
    t.ok(Object.keys(schema.config).length > 0, `${role} has a config schema`)
    t.ok('KAFKA_BROKERS' in schema.config && 'HTTP_PORT' in schema.config, `${role} reads the common settings`)
  }
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    for (const deployment of deployments(objects)) {
      const role = roleOf(deployment)
      const schema = roles.get(role)
      if (schema === undefined) { t.fail(`no schema for ${role}`); continue }
      const container = deployment.spec.template.spec.containers[0]
      const { values, fromSecret } = containerEnvironment(objects, container)
      const set = [...Object.keys(values), ...Object.keys(fromSecret)]
      const known = Object.keys(schema.config)
      const missing = requiredVariables(schema).filter((v) => !set.includes(v))
      t.same(missing, [], `${name}: ${role} gets every required variable`)
      t.same(set.filter((v) => !known.includes(v)), [], `${name}: ${role} is set only variables its schema knows`)
      t.equal(values.HTTP_HOST, '0.0.0.0', `${name}: ${role} listens on every interface`)
      t.equal(Number(values.HTTP_PORT), container.ports[0].containerPort,
        `${name}: ${role} listens on its container port`)
      const placeholders = Object.fromEntries(Object.keys(fromSecret).map((v) => [v, 'value-from-secret']))
      // the CA file is mounted from a Secret in the pod (checked below); a readable file stands in for it here
      const mounted = values.KAFKA_SSL_CA_LOCATION === undefined
        ? {}
        : { KAFKA_SSL_CA_LOCATION: join(CHART, 'values.yaml') }
      try {
        const config = loadConfig(schema.config, { ...values, ...placeholders, ...mounted }) as Record<string, unknown>
        t.ok(Array.isArray(config.KAFKA_BROKERS), `${name}: ${role} accepts the rendered environment`)
      } catch (err) {
        const reason = err instanceof ConfigError ? err.problems.join('; ') : String(err)
        t.fail(`${name}: ${role} refuses the rendered environment: ${reason}`)
      }
    }
  }
})

t.test('the brokers: single-node Redpanda for kind, ' +
  'kafka.brokers with SASL/TLS from Secrets for production', async (t) => {
  for (const name of ['default', 'kind']) {
    const objects = scenario(name)
    const redpanda = one(objects, 'StatefulSet', `${fullname}-redpanda`)
    t.equal(redpanda.spec.replicas, 1, `${name}: one Redpanda node`)
    const service = one(objects, 'Service', `${fullname}-redpanda`)
    t.equal(service.spec.clusterIP, 'None', 'headless, so the pod has a stable DNS name')
    t.equal(redpanda.spec.serviceName, service.metadata.name)
    const address = `${fullname}-redpanda-0.${fullname}-redpanda.${NAMESPACE}.svc.cluster.local:9092`
    const redpandaContainer = redpanda.spec.template.spec.containers[0]
    t.ok(redpandaContainer.args.includes(`--advertise-kafka-addr=internal://${address}`),
      `${name}: Redpanda advertises ${address}`)
    t.notOk(redpandaContainer.args.some((a: string) => a.includes('dev-container')),
      'no dev-container mode: topics are never auto-created')
    const dataMounted = redpandaContainer.volumeMounts
      .some((m: any) => m.name === 'data' && m.mountPath === '/var/lib/redpanda/data')
    t.ok(dataMounted, `${name}: the data directory is a volume`)
    const claims = (redpanda.spec.volumeClaimTemplates ?? []).map((c: any) => c.metadata.name)
    const emptyDirs = redpanda.spec.template.spec.volumes.filter((v: any) => v.emptyDir).map((v: any) => v.name)
    const ephemeral = scenarioValues(name).redpanda?.persistence?.enabled === false
    t.ok(ephemeral ? emptyDirs.includes('data') && claims.length === 0 : claims.includes('data'),
      `${name}: data on ${claims.includes('data') ? 'a PersistentVolumeClaim' : 'an emptyDir'} as configured`)
    for (const deployment of deployments(objects)) {
      const env = containerEnvironment(objects, deployment.spec.template.spec.containers[0]).values
      t.equal(env.KAFKA_BROKERS, address, `${name}: ${roleOf(deployment)} uses it`)
    }
  }
  for (const name of ['production', 'external-brokers']) {
    const objects = scenario(name)
    t.same(find(objects, 'StatefulSet'), [], `${name}: no Redpanda in the release`)
    for (const deployment of deployments(objects)) {
      const env = containerEnvironment(objects, deployment.spec.template.spec.containers[0]).values
      t.equal(env.KAFKA_BROKERS, scenarioValues(name).kafka.brokers)
    }
  }
  const production = scenario('production')
  const values = scenarioValues('production')
  for (const deployment of deployments(production)) {
    const spec = deployment.spec.template.spec
    const container = spec.containers[0]
    const { values: env, fromSecret } = containerEnvironment(production, container)
    t.same(fromSecret, {
      KAFKA_SASL_USERNAME: { name: values.kafka.sasl.existingSecret, key: values.kafka.sasl.usernameKey },
      KAFKA_SASL_PASSWORD: { name: values.kafka.sasl.existingSecret, key: values.kafka.sasl.passwordKey },
    }, `${roleOf(deployment)}: SASL credentials from the Secret`)
    t.equal(env.KAFKA_SECURITY_PROTOCOL, 'sasl_ssl')
    t.equal(env.KAFKA_SASL_MECHANISM, 'SCRAM-SHA-512')
    const ca = env.KAFKA_SSL_CA_LOCATION ?? ''
    const mount = container.volumeMounts.find((m: any) => ca.startsWith(`${m.mountPath}/`))
    const volume = spec.volumes.find((v: any) => v.name === mount?.name)
    t.equal(volume?.secret?.secretName, values.kafka.tls.caSecret,
      `${roleOf(deployment)}: the CA file is mounted from the CA Secret`)
    t.same(volume?.secret?.items, [{ key: values.kafka.tls.caKey, path: ca.slice(mount.mountPath.length + 1) }])
  }
  for (const configMap of find(production, 'ConfigMap')) {
    const credentials = Object.keys(configMap.data).filter((k) => /PASSWORD|SECRET|TOKEN|USERNAME/.test(k))
    t.same(credentials, [], `${configMap.metadata.name} holds no credentials`)
  }
  const saslWithoutSecret = 'redpanda.enabled=false,kafka.brokers=k:9092,kafka.securityProtocol=sasl_ssl'
  const refused = await helm(['template', RELEASE, CHART, '--set', saslWithoutSecret])
  t.not(refused.code, 0, 'SASL without a Secret is refused')
  t.match(refused.stderr, /kafka\.sasl\.existingSecret/)
  const noBrokers = await helm(['template', RELEASE, CHART, '--set', 'redpanda.enabled=false'])
  t.not(noBrokers.code, 0, 'no brokers at all is refused')
  t.match(noBrokers.stderr, /set kafka\.brokers/)
  const secretInEnv = await helm(
    ['template', RELEASE, CHART, '--set', 'roles.producer.env.KAFKA_SASL_PASSWORD=hunter2']
  )
  t.not(secretInEnv.code, 0, 'a password in plain values is refused')
})

t.test('the Ingress routes the dashboard and the producer, with the settings SSE needs', async (t) => {
  for (const name of ['default', 'kind', 'production', 'hpa']) {
    const ingress = one(scenario(name), 'Ingress', fullname)
    const analytics = `${fullname}-analytics`
    const producer = `${fullname}-producer`
    const expected: Record<string, string> = {
      '/': analytics,
      '/index.html': analytics,
      '/app.js': analytics,
      '/style.css': analytics,
      '/vendor/smoothie.js': analytics,
      '/analytics': analytics,
      '/analyticsAggregate': analytics,
      '/api/pages/P1/windows': analytics,
      '/publish/R1/blog': producer,
      '/publish': producer,
      '/events/R2': producer,
    }
    for (const [path, service] of Object.entries(expected)) {
      t.equal(route(ingress, path), service, `${name}: ${path} goes to ${service}`)
    }
    for (const internal of ['/metrics', '/health/ready', '/health/live', '/eventsource', '/supplier/pause']) {
      t.equal(route(ingress, internal), undefined, `${name}: ${internal} is not reachable through the ingress`)
    }
    const annotations = ingress.metadata.annotations ?? {}
    t.equal(annotations['nginx.ingress.kubernetes.io/proxy-buffering'], 'off', `${name}: no response buffering`)
    t.ok(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600,
      `${name}: SSE streams stay open an hour`)
    t.equal(ingress.spec.ingressClassName, 'nginx')
    for (const path of ingress.spec.rules[0].http.paths) {
      const service = one(scenario(name), 'Service', path.backend.service.name)
      t.ok(service.spec.ports.some((p: any) => p.name === path.backend.service.port.name),
        `${name}: ${path.path} names a port of ${service.metadata.name}`)
    }
  }
  const production = one(scenario('production'), 'Ingress', fullname)
  const values = scenarioValues('production')
  t.equal(production.spec.rules[0].host, values.ingress.host)
  t.same(production.spec.tls, [{ hosts: [values.ingress.host], secretName: values.ingress.tls.secretName }])
  t.equal(production.metadata.annotations?.['cert-manager.io/cluster-issuer'], 'letsencrypt',
    'user annotations are kept beside the SSE ones')
  t.same(find(scenario('external-brokers'), 'Ingress'), [], 'ingress.enabled=false renders none')
})

t.test('NetworkPolicy: ingress only from the ingress controller to the routed roles, ' +
  'egress only to DNS and the brokers', async (t) => {
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    const values = scenarioValues(name)
    const routed = values.ingress?.enabled === false ? [] : ['analytics', 'producer']
    const brokerPorts = values.redpanda?.enabled === false
      ? [...new Set(String(values.kafka.brokers).split(',').map((b: string) => Number(b.split(':').pop())))]
      : [9092]
    for (const deployment of deployments(objects)) {
      const role = roleOf(deployment)
      const policy = one(objects, 'NetworkPolicy', `${fullname}-${role}`)
      t.same(policy.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels,
        `${name}: the ${role} policy selects the ${role} pods`)
      t.same(policy.spec.policyTypes, ['Ingress', 'Egress'])
      const isController = (peer: any) =>
        peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'ingress-nginx' &&
        peer.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'ingress-nginx'
      const fromController = policy.spec.ingress.filter((rule: any) => rule.from?.some(isController))
      const verb = routed.includes(role) ? 'takes' : 'refuses'
      t.equal(fromController.length, routed.includes(role) ? 1 : 0,
        `${name}: ${role} ${verb} traffic from the ingress controller`)
      for (const rule of policy.spec.ingress) {
        t.ok(rule.from?.length > 0, `${name}: ${role} ingress rules name their peers`)
        t.same(rule.ports, [{ port: 'http', protocol: 'TCP' }], `${name}: ${role} opens only its HTTP port`)
      }
      const egressPorts = policy.spec.egress.flatMap((rule: any) => {
        t.ok(rule.ports?.length > 0, `${name}: ${role} egress rules are limited to ports`)
        return rule.ports.map((p: any) => p.port)
      })
      t.same([...new Set(egressPorts)].sort(), [53, ...brokerPorts].sort(),
        `${name}: ${role} reaches DNS and the broker ports only`)
      const dns = policy.spec.egress.find((rule: any) => rule.ports.some((p: any) => p.port === 53))
      t.match(dns.to, [{ podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }])
    }
  }
  const kind = scenario('kind')
  const egressTo = (objects: KubeObject[], port: number) => one(objects, 'NetworkPolicy', `${fullname}-producer`)
    .spec.egress.find((rule: any) => rule.ports.some((p: any) => p.port === port))
  const toRedpanda = egressTo(kind, 9092)
  const redpandaSelector = one(kind, 'StatefulSet', `${fullname}-redpanda`).spec.selector.matchLabels
  t.same(toRedpanda.to, [{ podSelector: { matchLabels: redpandaSelector } }],
    'with Redpanda in the release, only its pod')
  const production = egressTo(scenario('production'), 9093)
  t.same(production.to, scenarioValues('production').networkPolicy.brokerPeers,
    'external brokers: the configured peers')
})

t.test('the optional HPA scales analytics, and only analytics', async (t) => {
  const hpa = scenario('hpa')
  const [autoscaler] = find(hpa, 'HorizontalPodAutoscaler')
  t.equal(find(hpa, 'HorizontalPodAutoscaler').length, 1)
  t.same(autoscaler?.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: `${fullname}-analytics` })
  t.match(autoscaler?.spec, {
    minReplicas: 2, maxReplicas: 6, metrics: [{ resource: { name: 'cpu', target: { averageUtilization: 60 } } }],
  })
  t.equal(one(hpa, 'Deployment', `${fullname}-analytics`).spec.replicas, undefined, 'the HPA owns the replica count')
  t.equal(one(hpa, 'Deployment', `${fullname}-producer`).spec.replicas, 1)
  for (const name of ['default', 'production']) {
    t.same(find(scenario(name), 'HorizontalPodAutoscaler'), [], `${name}: no HPA`)
  }
  t.equal(one(scenario('production'), 'Deployment', `${fullname}-analytics`).spec.replicas, 2)
})

t.test('the helm test pod checks every enabled role of the release', async (t) => {
  for (const { name } of SCENARIOS) {
    const objects = scenario(name)
    const [pod] = find(objects, 'Pod')
    if (pod === undefined) { t.fail(`${name}: no test pod`); continue }
    t.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test')
    t.equal(pod.spec.restartPolicy, 'Never')
    const env = Object.fromEntries(pod.spec.containers[0].env.map((e: any) => [e.name, e.value]))
    const expected = deployments(objects).map((d) => {
      const service = one(objects, 'Service', `${fullname}-${roleOf(d)}`)
      return `http://${service.metadata.name}:${service.spec.ports[0].port}`
    })
    t.same(env.ROLE_URLS.split(' ').sort(), expected.sort(), `${name}: it asks every role's Service`)
    t.match(pod.spec.containers[0].args[0], /\/health\/ready/)
    t.equal(pod.spec.containers[0].image, deployments(objects)[0]?.spec.template.spec.containers[0].image,
      'with the release image, no extra image to pull')
    const labels = pod.metadata.labels ?? {}
    const clientLabel = Object.keys(labels).find((k) => labels[k] === 'true')
    if (find(objects, 'NetworkPolicy').length > 0) {
      const rolePolicies = find(objects, 'NetworkPolicy')
        .filter((p) => (ROLES as readonly string[]).includes(roleOf(p)))
      const admitsTestPod = (peer: any) => peer.podSelector?.matchLabels && !peer.namespaceSelector &&
        Object.entries(peer.podSelector.matchLabels).every(([k, v]) => labels[k] === v)
      const allowed = rolePolicies.filter((p) => p.spec.ingress?.some((rule: any) => rule.from?.some(admitsTestPod)))
      t.equal(allowed.length, deployments(objects).length,
        `${name}: every role's NetworkPolicy lets the test pod (${clientLabel}) in`)
    }
  }
})

t.test('NOTES.txt prints the port-forward command for the dashboard', async (t) => {
  const notes = await renderNotes({
    values: [join(CHART, 'ci', 'kind-values.yaml')], release: RELEASE, namespace: NAMESPACE,
  })
  t.match(notes, `kubectl --namespace ${NAMESPACE} port-forward service/${fullname}-analytics 8080:8080`)
  t.match(notes, 'http://localhost:8080')
  t.match(notes, `helm test ${RELEASE} --namespace ${NAMESPACE}`)
  const noAnalytics = await renderNotes({
    set: ['roles.analytics.enabled=false', 'ingress.paths[0].path=/', 'ingress.paths[0].role=producer'],
    release: RELEASE,
    namespace: NAMESPACE,
  })
  t.notMatch(noAnalytics, 'service/demo-pagestream-analytics', 'no dashboard command when analytics is off')
})

/** Paths of every value in values.yaml: maps are walked, lists and scalars are leaves. */
function valuePaths (node: Node | null, prefix = ''): string[] {
  if (isMap(node) && node.items.length > 0) {
    return node.items.flatMap((pair) => {
      const key = String(isScalar(pair.key) ? pair.key.value : pair.key)
      return valuePaths(pair.value as Node, `${prefix}${prefix ? '.' : ''}${key}`)
    })
  }
  return isMap(node) || isSeq(node) || isScalar(node) || node === null ? [prefix] : []
}

t.test('values.yaml documents every value (## @param) and values.schema.json knows it', async (t) => {
  const text = readFileSync(join(CHART, 'values.yaml'), 'utf8')
  const documented = [...text.matchAll(/^\s*## @param (\S+) \S/gm)].map((m) => m[1] as string)
  const paths = valuePaths(parseDocument(text).contents)
  t.ok(paths.length > 50, `${paths.length} values`)
  const covers = (param: string, path: string) => path === param || path.startsWith(`${param}.`)
  const undocumented = paths.filter((path) => !documented.some((param) => covers(param, path)))
  t.same(undocumented, [], 'every value has a @param (itself or its enclosing map)')
  t.same(documented.filter((param) => !paths.some((path) => covers(param, path))), [], 'every @param names a value')
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'))
  const inSchema = (path: string) => {
    let node = schema
    for (const key of path.split('.')) {
      // a free-form object (a securityContext, say) takes any key; Kubernetes validates what is inside
      const freeForm = node.properties === undefined && node.additionalProperties === undefined
      if (node.type !== 'object' || freeForm) return true
      const next = node.properties?.[key] ??
        (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined)
      if (next === undefined) return false
      node = next
    }
    return true
  }
  t.same(paths.filter((path) => !inSchema(path)), [], 'values.schema.json describes every value')
  const typo = await helm(['template', RELEASE, CHART, '--set', 'roles.analytic.replicaCount=2'])
  t.not(typo.code, 0, 'a misspelled value is refused')
  t.match(typo.stderr, /analytic/)
  const badPort = await helm(['template', RELEASE, CHART, '--set', 'roles.producer.port=80000'])
  t.not(badPort.code, 0, 'an impossible port is refused')
})

t.test('deploy/kind: ingress ports on the host, and the scripts install exactly what this test renders', async (t) => {
  const cluster = parse(readFileSync(join(ROOT, 'deploy', 'kind', 'cluster.yaml'), 'utf8'))
  t.equal(cluster.apiVersion, 'kind.x-k8s.io/v1alpha4')
  const [node] = cluster.nodes
  t.same(node.labels, { 'ingress-ready': 'true' }, 'ingress-nginx\'s kind manifest schedules on this label')
  t.same(node.extraPortMappings.map((m: any) => [m.containerPort, m.hostPort]), [[80, 80], [443, 443]])
  const scripts = ['deploy/kind/cluster.sh', 'deploy/minikube/cluster.sh', 'deploy/local/docker.sh']
  for (const script of scripts) {
    const syntax = await run('bash', ['-n', join(ROOT, script)]).then(() => 0, (err: { code: number }) => err.code)
    t.equal(syntax, 0, `${script} parses`)
  }
  const kindScript = readFileSync(join(ROOT, 'deploy', 'kind', 'cluster.sh'), 'utf8')
  const controllerNamespace = /--namespace (\S+) --for=condition=ready/.exec(kindScript)?.[1]
  const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'))
  const admittedNamespace = defaults.networkPolicy.ingressController.namespaceSelector['kubernetes.io/metadata.name']
  t.equal(controllerNamespace, admittedNamespace, 'the NetworkPolicy admits the controller the script installs')

  // stand-ins for kubectl and helm record how the script calls them
  const bin = mkdtempSync(join(tmpdir(), 'pagestream-kind-'))
  t.teardown(() => rmSync(bin, { recursive: true, force: true }))
  const calls = join(bin, 'calls')
  const recorder = (answer: string) => `#!/bin/sh\nprintf '%s\\n' "$(basename "$0") $*" >> "${calls}"\n${answer}\n`
  const kubectlAnswer = 'case "$*" in *jsonpath*) printf "pagestream-analytics" ;; esac'
  writeFileSync(join(bin, 'kubectl'), recorder(kubectlAnswer), { mode: 0o755 })
  writeFileSync(join(bin, 'helm'), recorder(''), { mode: 0o755 })
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, IMAGE: 'pagestream:dev' }
  await run(join(ROOT, 'deploy', 'kind', 'cluster.sh'), ['install'], { env })
  await run(join(ROOT, 'deploy', 'kind', 'cluster.sh'), ['port-forward'], { env })
  const recorded = readFileSync(calls, 'utf8').trim().split('\n')
  const restrictNamespace = 'kubectl label namespace pagestream --overwrite ' +
    'pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted'
  t.ok(recorded.includes(restrictNamespace), 'the namespace enforces the restricted Pod Security Standard')
  const install = recorded.find((line) => line.startsWith('helm upgrade --install'))?.split(' ') ?? []
  t.same(install.slice(0, 6), ['helm', 'upgrade', '--install', 'pagestream', CHART, '--namespace'])
  t.ok(recorded.includes('helm test pagestream --namespace pagestream --logs'), 'then helm test')
  // the same arguments, rendered for real
  const args = install.slice(3).filter((a) => !['--wait', '--timeout', '10m'].includes(a))
  const objects = await renderChart({
    values: [args[args.indexOf('--values') + 1] ?? ''],
    set: args.flatMap((a, i) => args[i - 1] === '--set' ? [a] : []),
    release: 'pagestream',
    namespace: 'pagestream',
  })
  const producer = one(objects, 'Deployment', 'pagestream-producer').spec.template.spec.containers[0]
  t.equal(producer.image, 'pagestream:dev', 'the image kind loaded')
  t.equal(producer.imagePullPolicy, 'Never', 'never pulled from a registry')
  const notes = await renderNotes({
    values: [join(CHART, 'ci', 'kind-values.yaml')], release: 'pagestream', namespace: 'pagestream',
  })
  const forward = recorded.find((line) => line.includes(' port-forward ')) ?? ''
  t.equal(forward, 'kubectl --namespace pagestream port-forward service/pagestream-analytics 8080:8080')
  t.match(notes, forward, 'make port-forward runs the command NOTES.txt prints')
})
