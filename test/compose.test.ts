// redpanda-compose.yml and the one image (deploy/docker), proved without a Docker engine: the compose
// file and the Dockerfile parsed and checked against the roles' own config schemas, and the image's
// entry point and health check run for real against this checkout.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigError, loadConfig } from '@pagestream/core'
import { COMPOSE_GO_VERSION, composeValidator } from '@pagestream/test-kit/compose-schema'
import { ROOT, startRole } from '@pagestream/test-kit'
import {
  ROLES, type RoleName, type RoleSchema, loadRoles, requiredVariables, serverPath,
} from '@pagestream/test-kit/roles'

const run = promisify(execFile)
const compose = parse(readFileSync(join(ROOT, 'redpanda-compose.yml'), 'utf8'), { merge: true }) as any
const dockerfile = readFileSync(join(ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8')
const entrypoint = join(ROOT, 'deploy', 'docker', 'entrypoint.sh')
const healthcheck = join(ROOT, 'deploy', 'docker', 'healthcheck.mjs')

let roles: Map<RoleName, RoleSchema>
t.before(async () => { roles = await loadRoles() })

/** Compose's `${VAR:-default}` as `docker compose` resolves it with VAR unset. */
function interpolate (value: unknown): string {
  return String(value).replace(
    /\$\{([A-Z_]+)(?::?-([^}]*))?\}/g,
    (_match, _name: string, fallback?: string) => fallback ?? ''
  )
}

function environment (service: any): Record<string, string> {
  const env = service.environment ?? {}
  if (Array.isArray(env)) throw new Error('use the map form of environment, so keys are checked')
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]))
}

const defaultPort = (role: RoleName) => Number(roles.get(role)?.config.HTTP_PORT?.default)

const composeSpecTitle =
  'the compose file is valid against the Compose Specification (compose-go ' + COMPOSE_GO_VERSION + ')'
t.test(composeSpecTitle, async (t) => {
  const validate = await composeValidator()
  t.same(validate(compose), [], 'redpanda-compose.yml')
  const broken = structuredClone(compose)
  broken.services.producer.depends_on.topics.condition = 'service_finished'
  broken.services.producer.healthcheck.intervall = '5s'
  const problems = validate(broken).join('\n')
  t.match(
    problems,
    /depends_on\/topics\/condition must be equal to one of the allowed values/,
    'the validation does fail on a wrong file'
  )
  t.match(problems, /additional properties \(intervall\)/)
})

t.test('compose runs Redpanda, Console, the topic set-up and every role', async (t) => {
  t.same(Object.keys(compose.services).sort(), ['console', 'redpanda', 'topics', ...ROLES].sort())
  const images = new Set(ROLES.map((role) => compose.services[role].image))
  t.equal(images.size, 1, 'one image for every role')
  t.equal(interpolate([...images][0]), 'pagestream:dev')
  for (const role of ROLES) {
    t.equal(compose.services[role].build.dockerfile, 'deploy/docker/Dockerfile')
    t.same(compose.services[role].command, [role], `${role}: the image runs the role named by its argument`)
  }
})

t.test(
  'Redpanda: one dev-container broker, Kafka API on localhost:9092, an internal listener for containers',
  async (t) => {
    const redpanda = compose.services.redpanda
    const args: string[] = redpanda.command.map(interpolate)
    t.ok(args.includes('--mode=dev-container'))
    t.ok(args.includes('--smp=1'), 'a single core: one broker for a laptop')
    t.ok(args.includes('--kafka-addr=internal://0.0.0.0:29092,external://0.0.0.0:9092'))
    t.ok(
      args.includes('--advertise-kafka-addr=internal://redpanda:29092,external://localhost:9092'),
      'host clients are told localhost:9092, containers redpanda:29092'
    )
    t.ok(redpanda.ports.map(interpolate).includes('127.0.0.1:9092:9092'), 'host clients reach the external listener')
    t.match(redpanda.healthcheck.test.join(' '), /rpk cluster health/)
    t.match(compose.services.console.environment, { KAFKA_BROKERS: 'redpanda:29092' })
    t.same(compose.services.console.depends_on, { redpanda: { condition: 'service_healthy' } })
    const consolePorts: string[] = compose.services.console.ports.map(interpolate)
    t.ok(
      consolePorts.some((p) => p.endsWith(':8080') && !p.includes(':8080:')),
      'Console is published beside, not on, the dashboard port'
    )
  }
)

t.test('the one-shot set-up creates every topic the roles use, with auto-creation off', async (t) => {
  const topics = compose.services.topics
  t.equal(topics.restart, 'no')
  t.same(topics.depends_on, { redpanda: { condition: 'service_healthy' } })
  const script: string = topics.command.join('\n')
  const lines = script.split('\n').map((line) => line.trim()).filter(Boolean)
  const disable = lines.findIndex((line) => /rpk cluster config set auto_create_topics_enabled false/.test(line))
  const firstCreate = lines.findIndex((line) => line.startsWith('rpk topic create'))
  t.ok(disable >= 0 && disable < firstCreate, 'auto-creation is switched off before any topic is created')
  const created = new Map<string, string>()
  for (const line of lines.filter((l) => l.startsWith('rpk topic create'))) {
    t.match(line, /--if-not-exists/, 'a second `up` does not fail on existing topics')
    t.match(line, /-X brokers=redpanda:29092/)
    const words = line.split(/\s+/).slice(3)
    for (let i = 0; i < words.length; i++) {
      const word = words[i] as string
      if (word.startsWith('-')) { if (!['--if-not-exists'].includes(word)) i++; continue }
      created.set(word, line)
    }
  }
  // what each role is told to use: its compose environment, else its schema's default
  const wanted = new Set<string>()
  for (const role of ROLES) {
    const env = environment(compose.services[role])
    for (const [name, schema] of Object.entries(roles.get(role)?.config ?? {})) {
      if (!/_TOPICS?$/.test(name)) continue
      const value = env[name] ?? String(schema.default ?? '')
      // an optional topic left empty is switched off (the lab-compatible output); derived ones are named below
      const optional = typeof schema.pattern === 'string' && new RegExp(schema.pattern).test('')
      if (optional && value === '' && !/_(CHANGELOG|LATE)_TOPIC$/.test(name)) continue
      t.not(value, '', `${role}: ${name} names its topic here, so the set-up can create it`)
      for (const topic of value.split(',').map((s) => s.trim()).filter(Boolean)) wanted.add(topic)
      if (/(_INPUT_TOPIC|^CONSUMER_TOPIC)$/.test(name)) wanted.add(`${value}.dlq`)
    }
  }
  t.ok(wanted.size >= 8, `the roles use ${[...wanted].join(' ')}`)
  t.same([...wanted].filter((topic) => !created.has(topic)).sort(), [], 'every one of them is created')
  const partitions = (topic: string) => /-p (\d+)/.exec(created.get(topic) ?? '')?.[1]
  const changelog = environment(compose.services.analytics).ANALYTICS_CHANGELOG_TOPIC ?? ''
  t.match(created.get(changelog), /-c cleanup\.policy=compact/, 'the analytics changelog is compacted')
  t.equal(partitions(changelog), partitions('R2'), 'and has as many partitions as the analytics input')
})

t.test('every role: the variables its schema requires, only variables it knows, values it accepts', async (t) => {
  for (const role of ROLES) {
    const schema = roles.get(role)
    if (schema === undefined) { t.fail(`no schema for ${role}`); continue }
    const env = environment(compose.services[role])
    const known = Object.keys(schema.config)
    t.same(requiredVariables(schema).filter((v) => !(v in env)), [], `${role}: every required variable is set`)
    t.same(Object.keys(env).filter((v) => !known.includes(v)), [], `${role}: no variable its schema does not know`)
    t.equal(env.HTTP_HOST, '0.0.0.0', `${role}: listens on every interface of its container`)
    t.equal(env.KAFKA_BROKERS, 'redpanda:29092', `${role}: uses the internal listener`)
    t.equal(Number(env.HTTP_PORT), defaultPort(role), `${role}: on its usual port`)
    t.same(
      compose.services[role].ports.map(interpolate),
      [`127.0.0.1:${env.HTTP_PORT}:${env.HTTP_PORT}`],
      `${role}: published on localhost:${env.HTTP_PORT}`
    )
    try {
      loadConfig(schema.config, env)
      t.pass(`${role}: accepts its compose environment`)
    } catch (err) {
      const reason = err instanceof ConfigError ? err.problems.join('; ') : String(err)
      t.fail(`${role}: refuses its compose environment: ${reason}`)
    }
  }
})

t.test('every role: health check, start order, restrictions, and time to shut down', async (t) => {
  for (const role of ROLES) {
    const service = compose.services[role]
    t.same(
      service.healthcheck.test,
      ['CMD', 'node', '/app/deploy/docker/healthcheck.mjs'],
      `${role}: health from /health/ready, without curl`
    )
    t.same(
      service.depends_on,
      { redpanda: { condition: 'service_healthy' }, topics: { condition: 'service_completed_successfully' } },
      `${role}: starts after the broker is healthy and the topics exist`
    )
    t.equal(service.read_only, true)
    t.same(service.cap_drop, ['ALL'])
    t.not(String(service.user).split(':')[0], '0', `${role}: not root`)
    const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period)?.[1])
    t.ok(
      grace * 1000 > Number(environment(service).SHUTDOWN_TIMEOUT_MS),
      `${role}: killed only after its own shutdown timeout`
    )
  }
})

/** One Dockerfile stage: its base image, its name if any, and its instructions. */
type Stage = { from: string, name?: string, instructions: Array<{ op: string, args: string }> }

/** The Dockerfile's instructions per stage, continuation lines joined. */
function stages (text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const args: Record<string, string> = {}
  const result: Stage[] = []
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/)
    const value = rest.join(' ')
    if (op === 'ARG' && result.length === 0) {
      const [name = '', fallback = ''] = value.split('=')
      args[name] = fallback.replace(/\$\{(\w+)\}/g, (_m, arg: string) => args[arg] ?? '')
    } else if (op === 'FROM') {
      const [image = '', , name] = value.replace(/\$\{(\w+)\}/g, (_m, arg: string) => args[arg] ?? '').split(/\s+/)
      result.push({ from: image, ...(name ? { name } : {}), instructions: [] })
    } else {
      result.at(-1)?.instructions.push({ op, args: value })
    }
  }
  return result
}

const imageTitle = 'the image: multi-stage on Node 24 slim, librdkafka built in the build stage, ' +
  'runtime libraries only in the final one'
t.test(imageTitle, async (t) => {
  const [build, final, ...more] = stages(dockerfile)
  t.equal(more.length, 0, 'two stages')
  t.equal(build?.from, 'node:24-bookworm-slim')
  t.equal(final?.from, 'node:24-bookworm-slim')
  const runs = (stage: typeof build) =>
    (stage?.instructions ?? []).filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ')
  const buildRuns = runs(build)
  for (const step of ['CKJS_LINKING=dynamic npm ci', 'npm run build', 'npm prune --omit=dev']) {
    t.match(buildRuns, step, `build stage runs ${step}`)
  }
  const at = (step: string) => buildRuns.indexOf(step)
  t.ok(at('npm ci') < at('npm run build') && at('npm run build') < at('npm prune'), 'install, build, then prune')
  const buildPackages = [
    'libssl-dev', 'libsasl2-dev', 'libzstd-dev', 'liblz4-dev', 'zlib1g-dev', 'libcurl4-openssl-dev', 'build-essential',
  ]
  for (const pkg of buildPackages) t.match(buildRuns, pkg)
  const installed = (/apt-get install ([^&]+)/.exec(runs(final))?.[1] ?? '')
    .split(/\s+/).filter((w) => w && !w.startsWith('-'))
  const runtimeLibraries = ['libssl3', 'zlib1g', 'libzstd1', 'libsasl2-2', 'liblz4-1', 'libcurl4', 'ca-certificates']
  for (const lib of runtimeLibraries) t.ok(installed.includes(lib), `final stage has ${lib}`)
  const buildTools = ['build-essential', 'python3', 'curl', 'wget', 'gcc', 'g++', 'make']
  t.same(
    installed.filter((pkg) => pkg.endsWith('-dev') || buildTools.includes(pkg)),
    [],
    'and no compilers, headers or curl'
  )
  const finalOps = final?.instructions ?? []
  const user = finalOps.filter((i) => i.op === 'USER').at(-1)?.args ?? ''
  t.match(user, /^[1-9]\d*(:\d+)?$/, 'a numeric non-root user, so runAsNonRoot can be verified')
  t.match(finalOps.filter((i) => i.op === 'ENV').map((i) => i.args).join(' '), /HTTP_HOST=0\.0\.0\.0/)
  const health = finalOps.find((i) => i.op === 'HEALTHCHECK')?.args ?? ''
  t.match(health, /CMD \["node", "\/app\/deploy\/docker\/healthcheck\.mjs"\]/, 'HEALTHCHECK runs node, not curl')
  t.equal(finalOps.find((i) => i.op === 'ENTRYPOINT')?.args, '["/app/deploy/docker/entrypoint.sh"]')
  t.ok(finalOps.some((i) => i.op === 'COPY' &&
    i.args.includes('deploy/docker/entrypoint.sh') && i.args.includes('deploy/docker/healthcheck.mjs')))
  const appFromContext = (i: { op: string, args: string }) => i.op === 'COPY' && !i.args.startsWith('--from=build') &&
    /(^| )(\.|services|node_modules)( |$)/.test(i.args)
  t.notOk(finalOps.some(appFromContext), 'the final stage takes the app only from the build stage')
  // every workspace's manifest is copied before `npm ci`, or npm ci would not install it
  const rootManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }
  const workspaces = rootManifest.workspaces
  const copies = (build?.instructions ?? []).filter((i) => i.op === 'COPY').map((i) => i.args)
  for (const workspace of workspaces) {
    t.ok(copies.includes(`${workspace}/package.json ${workspace}/`), `build stage copies ${workspace}/package.json`)
  }
  const leftOut = [
    'node_modules/fastify/package.json', 'services/core/node_modules/x', 'services/producer/dist/server.js',
    '.git/HEAD', 'charts/pagestream/values.yaml', 'deploy/kind/cluster.sh', 'services/producer/test/producer.test.ts',
  ]
  for (const path of leftOut) {
    t.ok(ignored(path), `.dockerignore keeps ${path} out of the build context`)
  }
  const sources = (build?.instructions ?? []).concat(finalOps)
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  t.ok(sources.length >= 10)
  for (const source of [...sources, 'services/producer/src/app.ts', 'web/public/index.html']) {
    t.notOk(ignored(source), `the build context keeps ${source}`)
  }
})

/**
 * Whether .dockerignore leaves a path out of the build context: last matching pattern wins, `!` re-includes,
 * a matched folder drops its contents.
 */
function ignored (path: string): boolean {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    .map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const globPart = (p: string) =>
    p === '**/' ? '(?:.*/)?' : p === '*' ? '[^/]*' : p === '?' ? '[^/]' : p.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  const regex = (pattern: string) => new RegExp(`^${pattern.split(/(\*\*\/|\*|\?)/).map(globPart).join('')}(?:/.*)?$`)
  let excluded = false
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!')
    if (regex(negated ? pattern.slice(1) : pattern).test(path)) excluded = !negated
  }
  return excluded
}

t.test('the entry point maps exactly the roles to their servers, and refuses anything else', async (t) => {
  const script = readFileSync(entrypoint, 'utf8')
  const arms = [...script.matchAll(/^\s*([a-z]+)\) port=(\d+) ;;$/gm)]
    .map((m) => [m[1] as string, Number(m[2])] as const)
  t.same(arms.map(([role]) => role).sort(), [...ROLES].sort(), 'one case per role')
  for (const [role, port] of arms) {
    t.equal(port, defaultPort(role as RoleName), `${role}: the entry point's port is the role's schema default`)
    t.ok(existsSync(serverPath(role)), `services/${role}/dist/server.js exists after the build`)
  }
  t.match(
    script,
    /exec node [^\n]*"\$app\/services\/\$role\/dist\/server\.js" "\$@"/,
    'exec: the role is PID 1 and gets SIGTERM itself'
  )
  for (const role of ROLES) {
    const { stdout } = await run('sh', [entrypoint, role, '--help'], { env: { ...process.env, PAGESTREAM_HOME: ROOT } })
    t.match(stdout, `pagestream ${role}:`, `${role}: the entry point starts the role (its --help)`)
    t.match(stdout, /HTTP_PORT/)
  }
  for (const bad of ['', 'core', '../core', 'analytics/../core']) {
    const refused = await run('sh', [entrypoint, bad], { env: { ...process.env, PAGESTREAM_HOME: ROOT } })
      .then(() => undefined, (err: { code: number, stderr: string }) => err)
    t.equal(refused?.code, 64, `"${bad}" is refused`)
    t.match(refused?.stderr, /unknown role/)
  }
})

t.test('the HEALTHCHECK answers 0 while the role is ready and 1 once it is gone', async (t) => {
  const producer = await startRole(t, 'producer')
  const env = { ...process.env, HTTP_PORT: String(producer.port) }
  const check = () => run(process.execPath, [healthcheck], { env })
    .then(() => 0, (err: { code: number }) => err.code)
  t.equal(await check(), 0, 'ready role: healthy')
  await producer.stop()
  t.equal(await check(), 1, 'stopped role: unhealthy')
})
