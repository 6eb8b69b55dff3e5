import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { TSchema } from '@sinclair/typebox'
import { ROOT } from './process.js'

/** Every role the image, the compose file and the chart must run. */
export const ROLES = ['analytics', 'producer', 'supplier', 'consumer', 'transformer'] as const
export type RoleName = typeof ROLES[number]

export interface RoleSchema {
  name: string
  /** Environment variable name -> its TypeBox schema, exactly what the role reads at start-up. */
  config: Record<string, TSchema>
}

export function serverPath (role: string): string {
  return join(ROOT, 'services', role, 'dist', 'server.js')
}

/** The role as production loads it: services/<role>/dist/app.js, built by `npm run build`. */
export async function loadRole (role: string): Promise<RoleSchema> {
  const app = join(ROOT, 'services', role, 'dist', 'app.js')
  if (!existsSync(app)) throw new Error(`${app} does not exist: build the role first (npm run build)`)
  const module = await import(pathToFileURL(app).href) as { role?: RoleSchema }
  if (module.role?.config === undefined) throw new Error(`${app} exports no role with a config schema`)
  return module.role
}

export async function loadRoles (): Promise<Map<RoleName, RoleSchema>> {
  const roles = new Map<RoleName, RoleSchema>()
  for (const role of ROLES) roles.set(role, await loadRole(role))
  return roles
}

/** Variables without a default: start-up fails unless the environment sets them. */
export function requiredVariables (role: RoleSchema): string[] {
  return Object.entries(role.config).filter(([, schema]) => schema.default === undefined).map(([name]) => name)
}
