import type { ErrorObject } from 'ajv'

/** One line per schema violation: where, what, and the unexpected property when that is the problem. */
export function schemaProblem (error: ErrorObject): string {
  const property = 'additionalProperty' in error.params ? ` (${String(error.params.additionalProperty)})` : ''
  return `${error.instancePath || '/'} ${error.message ?? ''}${property}`
}
