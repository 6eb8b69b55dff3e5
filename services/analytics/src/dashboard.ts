import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import helmet from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

const require = createRequire(import.meta.url)

/** The dashboard's folder: `public/` of the @pagestream/web package. */
export function webRoot (): string {
  return join(dirname(require.resolve('@pagestream/web/package.json')), 'public')
}

function smoothieFolder (): string {
  const webRequire = createRequire(require.resolve('@pagestream/web/package.json'))
  return dirname(webRequire.resolve('smoothie'))
}

/**
 * Security headers on every response and a Content-Security-Policy that allows nothing inline:
 * scripts, styles and event streams come from this origin only.
 */
export async function dashboardPlugin (fastify: FastifyInstance, options: { root: string }): Promise<void> {
  await fastify.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    // the dashboard is plain http on localhost or behind an ingress that terminates TLS
    strictTransportSecurity: false,
  })
  await fastify.register(fastifyStatic, { root: options.root, index: ['index.html'], maxAge: 0 })
  // Smoothie Charts from the installed npm package, never a CDN
  const smoothie = smoothieFolder()
  fastify.get('/vendor/smoothie.js', (_request, reply) => reply.sendFile('smoothie.js', smoothie))
}
