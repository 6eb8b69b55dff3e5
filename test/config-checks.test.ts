// A role's configuration rules, the schema's and its own (windows, allow-list, names, SASL, CA, proxies), all stop
// start-up with exit 2 naming the variable before any Kafka client opens: proved with no broker to reach at all.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { ROLES, serverPath } from '@pagestream/test-kit/roles'

const run = promisify(execFile)
const NO_BROKER = '127.0.0.1:1'

interface Refusal { code: number | undefined, stdout: string, stderr: string }

/** Starts the role as production does and returns how it ended; a role that starts is killed after 30 s. */
async function start (role: string, env: Record<string, string>): Promise<Refusal> {
  const outcome = await run(process.execPath, [serverPath(role)], {
    env: { ...process.env, KAFKA_BROKERS: NO_BROKER, HTTP_PORT: '0', LOG_LEVEL: 'info', ...env },
    timeout: 30_000,
  }).then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (err: Refusal) => err)
  return { code: outcome.code, stdout: outcome.stdout, stderr: outcome.stderr }
}

function refused (t: Test, outcome: Refusal, role: string, variables: string[]): void {
  t.equal(outcome.code, 2, `${role}: exit code 2`)
  t.match(outcome.stderr, new RegExp(`^pagestream ${role}: invalid configuration:\\n`), `${role}: says so`)
  for (const variable of variables) {
    t.match(outcome.stderr, new RegExp(`\\n {2}${variable}: `), `${role}: names ${variable}`)
  }
  // any Kafka client would have logged its connection attempt to the unreachable broker
  t.equal(outcome.stdout, '', `${role}: nothing was started, nothing logged`)
  t.notMatch(outcome.stderr, /127\.0\.0\.1:1|connect/i, `${role}: no connection was attempted`)
}

t.test('analytics: a window spec that does not fit stops start-up naming the variable', async (t) => {
  const slice = await start('analytics', { WINDOW_SLICE_MS: '300' })
  refused(t, slice, 'analytics', ['WINDOW_SLICE_MS', 'ROLLING_COUNT_SPAN_MS'])
  refused(t, await start('analytics', { WINDOW_ADVANCE_MS: '9000' }), 'analytics', ['WINDOW_ADVANCE_MS'])
})

t.test('producer: an allow-list naming an internal topic stops start-up naming PRODUCER_TOPICS', async (t) => {
  const outcome = await start('producer', { PRODUCER_TOPICS: 'R1,__consumer_offsets' })
  refused(t, outcome, 'producer', ['PRODUCER_TOPICS'])
  t.match(outcome.stderr, /"__consumer_offsets" is refused: internal topics cannot be published to/)
})

t.test('supplier and producer: names no PageEvent could carry stop start-up naming the list', async (t) => {
  const long = 'x'.repeat(257)
  const supplier = await start('supplier', { SUPPLIER_PAGES: `P1,${long}`, SUPPLIER_USERS: long })
  refused(t, supplier, 'supplier', ['SUPPLIER_PAGES', 'SUPPLIER_USERS'])
  t.match(supplier.stderr, /SUPPLIER_PAGES: must be page name, 1 to 256 characters \(got "x{257}"\)/)
  const producer = await start('producer', { PRODUCER_USERS: `U1,${long}`, PRODUCER_TOPICS: 'R1,bad$name' })
  refused(t, producer, 'producer', ['PRODUCER_USERS', 'PRODUCER_TOPICS'])
})

t.test('every role: SASL without credentials, a missing CA file, proxies that are no addresses', async (t) => {
  const bad = {
    KAFKA_SECURITY_PROTOCOL: 'sasl_ssl',
    KAFKA_SSL_CA_LOCATION: '/nonexistent/ca.pem',
    HTTP_TRUST_PROXY: '10.0.0.0/8, proxy.example, 10.1.0.0/33',
  }
  const named = ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SSL_CA_LOCATION', 'HTTP_TRUST_PROXY']
  const outcomes = await Promise.all(ROLES.map(async (role) => [role, await start(role, bad)] as const))
  for (const [role, outcome] of outcomes) {
    refused(t, outcome, role, named)
    const entries = /HTTP_TRUST_PROXY: .*\(got "proxy\.example", "10\.1\.0\.0\/33"\)/
    t.match(outcome.stderr, entries, `${role}: names the bad entries`)
  }
})
