import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { commonConfig, createService, loadConfig, type Role } from '@pagestream/core'
import {
  ROOT, TEST_BROKERS, deleteTopics, freePort, parseMetrics, privateBroker, uniqueName, waitFor,
} from '@pagestream/test-kit'
import { spawn } from 'node:child_process'

const run = promisify(execFile)

function role (onClose: string[] = []): Role<ReturnType<typeof commonConfig>> {
  return {
    name: 'probe',
    description: 'test role',
    config: commonConfig('probe', 0),
    app: async (fastify) => {
      fastify.addHook('onClose', async () => { onClose.push(`role closed, ready=${fastify.health.readiness().ready}`) })
      fastify.get('/boom', async () => { throw new Error('secret internals') })
    },
  }
}

t.test('health, readiness, metrics and errors of a role', async (t) => {
  const config = loadConfig(commonConfig('probe', 0), { KAFKA_BROKERS: TEST_BROKERS })
  const fastify = await createService(role(), config, { logger: false })
  t.teardown(() => fastify.close())

  t.equal((await fastify.inject('/health/live')).statusCode, 200)
  const ready = await fastify.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json().checks.broker, { ok: true })

  const boom = await fastify.inject('/boom')
  t.equal(boom.statusCode, 500)
  t.same(boom.json(), { statusCode: 500, error: 'Internal Server Error', message: 'internal error' },
    '5xx details stay in the log')
  const missing = await fastify.inject('/nowhere?x=1')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().message, 'no route GET /nowhere')

  const metrics = await fastify.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /text\/plain/)
  const boomCount = metrics.body.split('\n').find(
    (line) => line.startsWith('http_request_duration_seconds_count') && line.includes('route="/boom"')
  )
  t.match(boomCount, /status="500"/)
  t.match(boomCount, /role="probe"/)
  t.match(boomCount, / 1$/)
  t.match(metrics.body, /process_cpu_seconds_total/)
})

t.test('readiness follows the broker: down when it stops, back when it returns', async (t) => {
  const broker = await privateBroker(t)
  const config = loadConfig(commonConfig('probe', 0), { KAFKA_BROKERS: broker.brokers })
  const fastify = await createService(role(), config, { logger: false })
  t.teardown(() => fastify.close())
  const status = async () => (await fastify.inject('/health/ready')).statusCode
  const readyGauge = async () => parseMetrics((await fastify.inject('/metrics')).body)
    .find((sample) => sample.name === 'pagestream_ready')?.value
  t.equal(await status(), 200)
  t.equal(await readyGauge(), 1, 'pagestream_ready 1 while ready')

  await broker.stop()
  await waitFor('readiness to drop', async () => await status() === 503, 15_000)
  const body = (await fastify.inject('/health/ready')).json()
  t.match(body.checks.broker.detail, new RegExp(`brokers ${broker.brokers} do not answer`))
  t.equal((await fastify.inject('/health/live')).statusCode, 200, 'liveness does not depend on the broker')
  t.equal(await readyGauge(), 0, 'pagestream_ready 0 while /health/ready answers 503')

  await broker.start()
  await waitFor('readiness to return', async () => await status() === 200, 30_000)
  t.equal(await readyGauge(), 1, 'pagestream_ready 1 again after the broker returned')
})

t.test('close: readiness drops first, then the role closes what it opened', async (t) => {
  const events: string[] = []
  const config = loadConfig(commonConfig('probe', 0), { KAFKA_BROKERS: TEST_BROKERS })
  const fastify = await createService(role(events), config, { logger: false })
  await fastify.close()
  t.same(events, ['role closed, ready=false'])
})

t.test('runService: SIGTERM drains and exits 0; bad config exits 2 naming the variable', async (t) => {
  const topic = uniqueName('core-minimal')
  t.teardown(() => deleteTopics([topic]))
  const fixture = join(ROOT, 'test', 'fixtures', 'minimal-role.mjs')

  const bad = await run(
    process.execPath, [fixture], { env: { ...process.env, HTTP_PORT: 'x' } }
  ).catch((err: { code: number, stderr: string }) => err)
  t.equal((bad as { code: number }).code, 2)
  t.match(
    (bad as { stderr: string }).stderr, /pagestream minimal: invalid configuration:\n {2}HTTP_PORT: must be an integer/
  )

  const failing = await run(
    process.execPath,
    [fixture],
    { env: { ...process.env, KAFKA_BROKERS: TEST_BROKERS, HTTP_PORT: '0', MINIMAL_TOPIC: 'bad$name' } }
  )
    .catch((err: { code: number, stdout: string, stderr: string }) => err)
  t.equal((failing as { code: number }).code, 1, 'a failed start-up exits 1')
  t.match(`${(failing as { stdout: string }).stdout}${(failing as { stderr: string }).stderr}`, /start-up failed/,
    'and says why')

  const help = await run(process.execPath, [fixture, '--help'])
  t.match(help.stdout, /MINIMAL_TOPIC +topic to write to \[default "minimal"\]/)
  t.match(help.stdout, /KAFKA_BROKERS +bootstrap brokers/)

  const port = await freePort()
  const child = spawn(process.execPath, [fixture], {
    env: {
      ...process.env, KAFKA_BROKERS: TEST_BROKERS, HTTP_PORT: String(port), MINIMAL_TOPIC: topic, LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => { child.kill('SIGKILL') })
  await waitFor('the role to be ready', async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status === 200)
  const sent = await fetch(`http://127.0.0.1:${port}/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' })
  t.equal(sent.status, 200)

  const stopping = Date.now()
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exit code 0 after SIGTERM')
  t.ok(Date.now() - stopping < 10_000, `stopped in ${Date.now() - stopping} ms`)
  const lines = output.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string, signal?: string })
  const stop = lines.findIndex((l) => l.msg === 'stopping' && l.signal === 'SIGTERM')
  const closed = lines.findIndex((l) => l.msg === 'producer closed')
  t.ok(stop >= 0 && closed > stop, 'logged the signal, then closed the producer')
  t.notMatch(await readFile(fixture, 'utf8'), /process\.on/, 'the role itself never touches process signals')
})
