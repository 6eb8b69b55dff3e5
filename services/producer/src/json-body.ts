import { HttpError } from '@pagestream/core'
import type { FastifyInstance } from 'fastify'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })
/** Property names that reach Object.prototype when a parsed body is merged into another object. */
const REFUSED_PROPERTIES = new Set(['__proto__', 'constructor'])

/** The charset parameter of a content type, lower-cased; undefined when there is none. */
function charsetOf (contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '')
  return match?.[1]?.toLowerCase()
}

/** JSON text of a body exactly as sent: UTF-8 only, never decoded with replacement characters. */
function decodeBody (contentType: string | undefined, body: Buffer): string {
  const charset = charsetOf(contentType)
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new HttpError(415, `charset ${charset} is not supported; send application/json in UTF-8`)
  }
  try {
    return strictUtf8.decode(body)
  } catch {
    throw new HttpError(400, 'body is not valid UTF-8')
  }
}

/**
 * A text where no refused name is spelled out and no \\u escape could spell one holds no such key: it is
 * parsed without the reviver, which costs a call per value (a 100-event batch: 500 calls).
 */
function mayHoldRefusedKey (text: string): boolean {
  return text.includes('\\u') || text.includes('__proto__') || text.includes('constructor')
}

function parseJson (text: string): unknown {
  try {
    if (!mayHoldRefusedKey(text)) return JSON.parse(text)
    return JSON.parse(text, (key, value: unknown) => {
      if (REFUSED_PROPERTIES.has(key)) {
        throw new HttpError(400, `body holds a "${key}" property, which is refused (prototype pollution)`)
      }
      return value
    })
  } catch (err) {
    if (err instanceof HttpError) throw err
    throw new HttpError(400, `body is not valid JSON (${(err as Error).message})`)
  }
}

/**
 * Bodies are application/json in UTF-8 and nothing else: other media types get 415 (no text/plain
 * parser), other charsets 415, bytes that are not UTF-8 and prototype keys 400, each saying why.
 */
export function acceptJsonOnly (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJson(decodeBody(request.headers['content-type'], body as Buffer)))
    } catch (err) {
      done(err as HttpError, undefined)
    }
  })
}
