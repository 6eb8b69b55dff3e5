/**
 * Every role and its HTTP port by default: the one table. The roles' config schemas read it; the scripts,
 * the image, the compose file, the chart and the README keep copies that test/role-ports.test.ts checks.
 */
export const ROLE_PORTS = {
  analytics: 8080,
  producer: 8081,
  supplier: 8082,
  consumer: 8083,
  transformer: 8084,
} as const

export type RoleName = keyof typeof ROLE_PORTS
