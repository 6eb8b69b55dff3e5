// Host ports for a compose project under test, free ones so that a user's `make up` keeps its defaults.
import { createServer } from 'node:net'

/** Distinct free ports: all held open together, then released. */
async function freePorts (count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer())
  await Promise.all(servers.map((server) =>
    new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))))
  const ports = servers.map((server) => {
    const address = server.address()
    return typeof address === 'object' && address !== null ? address.port : 0
  })
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

const names = ['KAFKA', 'ADMIN', 'CONSOLE', 'ANALYTICS', 'PRODUCER', 'SUPPLIER', 'CONSUMER', 'TRANSFORMER'] as const
export type LabPorts = Record<typeof names[number], number>

/**
 * Free host ports for every published service, and the variables redpanda-compose.yml reads them from. Points
 * the Kafka test helpers (PAGESTREAM_TEST_BROKERS) at the project's broker: import helpers/kafka.ts after this.
 */
export async function labPorts (): Promise<{ ports: LabPorts, env: Record<string, string> }> {
  const free = await freePorts(names.length)
  const ports = Object.fromEntries(names.map((name, i) => [name, free[i] as number])) as LabPorts
  process.env.PAGESTREAM_TEST_BROKERS = `localhost:${ports.KAFKA}`
  return { ports, env: Object.fromEntries(names.map((name) => [`PAGESTREAM_${name}_PORT`, String(ports[name])])) }
}
