import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'

/**
 * A processor replica's id: the configured one (stable across restarts, so a restart fences its zombie),
 * or, when none is set, one new per process, so two replicas on one host never share a transactional.id.
 */
export function replicaInstanceId (configured: string): { id: string, configured: boolean } {
  if (configured !== '') return { id: configured, configured: true }
  const host = hostname().replace(/[^a-zA-Z0-9._-]/g, '-')
  return { id: `${host}-${process.pid}-${randomBytes(3).toString('hex')}`, configured: false }
}
