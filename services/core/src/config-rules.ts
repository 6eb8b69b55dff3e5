import { accessSync, constants, statSync } from 'node:fs'
import { isIP } from 'node:net'

/** Rules of the common settings that no single schema states; checked at load, before any connection. */
export function commonRuleProblems (config: Record<string, unknown>): string[] {
  const problems: string[] = []
  const protocol = config.KAFKA_SECURITY_PROTOCOL
  if (typeof protocol === 'string' && protocol.startsWith('sasl_')) {
    const missing = ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'].filter((v) => config[v] === '')
    problems.push(...missing.map((v) => `${v}: required when KAFKA_SECURITY_PROTOCOL=${protocol}`))
  }
  const ca = config.KAFKA_SSL_CA_LOCATION
  // librdkafka says no more than "Erroneous state" about a CA file it cannot read
  if (typeof ca === 'string' && ca !== '' && !readableFile(ca)) {
    problems.push(`KAFKA_SSL_CA_LOCATION: must be a readable PEM file (got ${JSON.stringify(ca)})`)
  }
  const proxies = config.HTTP_TRUST_PROXY
  if (typeof proxies === 'string') {
    const bad = trustedProxyList(proxies).filter((entry) => !isProxyAddress(entry))
    if (bad.length > 0) {
      problems.push('HTTP_TRUST_PROXY: must be empty, true, or addresses/CIDRs such as 10.0.0.0/8 or loopback ' +
        `(got ${bad.map((entry) => JSON.stringify(entry)).join(', ')})`)
    }
  }
  return problems
}

function readableFile (path: string): boolean {
  try {
    accessSync(path, constants.R_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** HTTP_TRUST_PROXY as a list of addresses; empty for "", "true" and "false", which are not lists. */
function trustedProxyList (setting: string): string[] {
  if (['', 'true', 'false'].includes(setting)) return []
  return setting.split(',').map((entry) => entry.trim())
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** What Fastify's proxy-addr accepts: a named range, an address, address/prefix-length or IPv4 address/netmask. */
function isProxyAddress (entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address = '', range, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (range === undefined) return true
  if (family === 4 && isIP(range) === 4) return true
  return /^\d{1,3}$/.test(range) && Number(range) >= 1 && Number(range) <= (family === 4 ? 32 : 128)
}
