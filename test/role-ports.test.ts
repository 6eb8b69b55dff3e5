// The role <-> port table lives once, in services/core/src/roles.ts (ROLE_PORTS); the roles' schemas read it.
// Everything that must repeat it (shell scripts, the image, compose, the chart, the READMEs) is checked against it.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { ROLE_PORTS } from '@pagestream/core'
import { ROOT } from '@pagestream/test-kit'
import { ROLES, loadRoles } from '@pagestream/test-kit/roles'

type PortTable = Record<string, number>

const read = (...path: string[]) => readFileSync(join(ROOT, ...path), 'utf8')
const table = (pairs: Iterable<[string, string | number]>): PortTable =>
  Object.fromEntries([...pairs].map(([role, port]) => [role, Number(port)]))

/** deploy/local/run.sh: `declare -A ports=([analytics]=8080 …)`. */
function runScriptPorts (script: string): PortTable {
  const declared = /declare -A ports=\(([^)]*)\)/.exec(script)?.[1] ?? ''
  return table([...declared.matchAll(/\[([a-z]+)\]=(\d+)/g)].map((m) => [m[1] as string, m[2] as string]))
}

/** The Dockerfile's EXPOSE ports, sorted. */
function exposedPorts (dockerfile: string): number[] {
  return [...dockerfile.matchAll(/^EXPOSE\s+(.+)$/gm)]
    .flatMap((m) => (m[1] as string).trim().split(/\s+/).map((port) => Number(port.replace(/\/tcp$/, ''))))
    .sort((a, b) => a - b)
}

/** deploy/docker/entrypoint.sh: one `role) port=NNNN ;;` arm per role. */
function entrypointPorts (script: string): PortTable {
  return table([...script.matchAll(/^\s*([a-z]+)\) port=(\d+) ;;$/gm)].map((m) => [m[1] as string, m[2] as string]))
}

const expectedPorts = Object.values(ROLE_PORTS).sort((a, b) => a - b)

t.test('the table names every role, and each role listens on its port by default', async (t) => {
  t.same(Object.keys(ROLE_PORTS).sort(), [...ROLES].sort(), 'ROLE_PORTS and the roles the deployments run')
  t.equal(new Set(expectedPorts).size, expectedPorts.length, 'no two roles share a port')
  const roles = await loadRoles()
  t.same(table([...roles].map(([role, schema]) => [role, String(schema.config.HTTP_PORT?.default)])), ROLE_PORTS,
    'HTTP_PORT defaults of the config schemas')
})

t.test('scripts and the image: deploy/local/run.sh, the entry point, the Dockerfile EXPOSE', async (t) => {
  const runScript = read('deploy', 'local', 'run.sh')
  t.same(runScriptPorts(runScript), ROLE_PORTS, 'deploy/local/run.sh ports')
  t.same(entrypointPorts(read('deploy', 'docker', 'entrypoint.sh')), ROLE_PORTS, 'deploy/docker/entrypoint.sh')
  const dockerfile = read('deploy', 'docker', 'Dockerfile')
  t.same(exposedPorts(dockerfile), expectedPorts, 'deploy/docker/Dockerfile EXPOSE')
  // the checks do see a copy that drifted
  const drifted = runScript.replace('[producer]=8081', '[producer]=8091')
  t.notSame(runScriptPorts(drifted), ROLE_PORTS, 'a drifted run.sh is seen')
  const shortened = dockerfile.replace(/^EXPOSE (.*) 8084$/m, 'EXPOSE $1')
  t.notSame(exposedPorts(shortened), expectedPorts, 'a port left out of EXPOSE is seen')
})

t.test('redpanda-compose.yml: each role told its port and published on it', async (t) => {
  const compose = parse(read('redpanda-compose.yml'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, unknown>, ports?: string[] }>
  }
  for (const [role, port] of Object.entries(ROLE_PORTS)) {
    const service = compose.services[role]
    t.equal(Number(service?.environment?.HTTP_PORT), port, `${role}: HTTP_PORT`)
    // a host port may be moved by a variable (`${VAR:-default}`): its default is the table's
    const published = service?.ports?.map((mapping) => mapping.replace(/\$\{\w+:-(\d+)\}/g, '$1'))
    t.same(published, [`127.0.0.1:${port}:${port}`], `${role}: published on localhost:${port}`)
  }
})

t.test('the chart: roles.<role>.port in values.yaml and its default in values.schema.json', async (t) => {
  const values = parse(read('charts', 'pagestream', 'values.yaml')) as { roles: Record<string, { port: number }> }
  const ports = Object.entries(values.roles).map(([role, settings]) => [role, settings.port] as [string, number])
  t.same(table(ports), ROLE_PORTS, 'values.yaml')
  const schema = JSON.parse(read('charts', 'pagestream', 'values.schema.json')) as {
    properties: { roles: { properties: Record<string, { properties: { port: { default: number } } }> } }
  }
  const defaults = Object.entries(schema.properties.roles.properties)
    .map(([role, s]) => [role, s.properties.port.default] as [string, number])
  t.same(table(defaults), ROLE_PORTS, 'values.schema.json defaults')
})

t.test('the READMEs: the table of roles, the section headings, each role\'s own README', async (t) => {
  const readme = read('README.md')
  const rows = [...readme.matchAll(/^\| ([a-z]+) \| http:\/\/localhost:(\d+) \|/gm)]
  t.same(table(rows.map((m) => [m[1] as string, m[2] as string])), ROLE_PORTS, 'README.md table of roles')
  const headings = [...readme.matchAll(/^### ([a-z]+) \((\d+)\)$/gm)]
  t.same(table(headings.map((m) => [m[1] as string, m[2] as string])), ROLE_PORTS, 'README.md section headings')
  for (const [role, port] of Object.entries(ROLE_PORTS)) {
    const own = join('services', role, 'README.md')
    if (!existsSync(join(ROOT, own))) continue
    const title = /^# \S+ \(port (\d+)\)/m.exec(read(own))?.[1]
    if (title !== undefined) t.equal(Number(title), port, own)
  }
})
