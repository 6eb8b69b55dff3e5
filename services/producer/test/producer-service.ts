import type { Test } from 'tap'
import { createService, loadConfig } from '@pagestream/core'
import { role } from '../src/app.js'
import { TEST_BROKERS } from '@pagestream/test-kit'

/** The producer role in this process, exactly as production builds it, closed at teardown. */
export async function producerService (t: Test, env: Record<string, string>) {
  const config = loadConfig(role.config, { KAFKA_BROKERS: TEST_BROKERS, LOG_LEVEL: 'silent', ...env })
  const fastify = await createService(role, config, { logger: false })
  t.teardown(() => fastify.close())
  return fastify
}
