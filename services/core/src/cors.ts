import cors from '@fastify/cors'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'

const ORIGIN = '(\\*|https?://[^,\\s/]+)'

/** CORS_ORIGINS of the roles a page from another origin may call (analytics streams and API, producer). */
export function corsConfig () {
  return {
    CORS_ORIGINS: Type.Transform(Type.String({
      pattern: `^(\\s*${ORIGIN}\\s*(,\\s*${ORIGIN}\\s*)*)?$`,
      default: '',
      description: 'origins whose pages may call this API from a browser (CORS), ' +
        'e.g. https://a.example,http://localhost:3000; * any; empty none',
      expected: 'empty, * or comma-separated origins like https://dash.example.com (scheme://host[:port], no path)',
    }))
      .Decode((value) => value.split(',').map((origin) => origin.trim()).filter((origin) => origin !== ''))
      .Encode((origins) => origins.join(',')),
  }
}

export interface CrossOriginOptions {
  origins: readonly string[]
  methods: string[]
  /** Request headers a cross-origin caller may send beyond the CORS-safelisted ones. */
  allowedHeaders: string[]
}

/**
 * Answers CORS preflights and adds Access-Control-* headers for the listed origins, on the routes
 * of the calling plugin; with no origins it adds nothing, and browsers keep their same-origin rule.
 */
export async function allowCrossOrigin (fastify: FastifyInstance, options: CrossOriginOptions): Promise<void> {
  if (options.origins.length === 0) return
  await fastify.register(cors, {
    origin: options.origins.includes('*') ? '*' : [...options.origins],
    methods: options.methods,
    allowedHeaders: options.allowedHeaders,
    // a 503 or 429 says when to retry; the browser hides the header unless exposed
    exposedHeaders: ['retry-after'],
    maxAge: 600,
  })
}
