import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface Tracked { busy: number, lastActive: number }

export interface ConnectionDrain {
  /** True once the drain began: responses then carry `Connection: close`. */
  readonly draining: boolean
  /**
   * From now on, keep-alive connections are closed only once they have been idle for `quietMs`:
   * one that a client is about to reuse gets its next request answered (Fastify's 503 while
   * closing) with `Connection: close` instead of a reset. Requests under way finish.
   */
  start(): void
}

/**
 * Tracks the connections of an HTTP server so that a shutdown does not reset a request that a
 * client has already sent on a keep-alive connection the server took for idle.
 */
export function connectionDrain (server: HttpServer, quietMs = 1_000): ConnectionDrain {
  const connections = new Map<Socket, Tracked>()
  let draining = false
  let sweeper: NodeJS.Timeout | undefined
  server.on('connection', (socket: Socket) => {
    connections.set(socket, { busy: 0, lastActive: Date.now() })
    socket.once('close', () => connections.delete(socket))
  })
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const tracked = connections.get(request.socket)
    if (tracked === undefined) return
    tracked.busy++
    response.once('close', () => {
      tracked.busy--
      tracked.lastActive = Date.now()
    })
  })
  server.once('close', () => clearInterval(sweeper))

  const closeQuietConnections = () => {
    for (const [socket, tracked] of connections) {
      if (tracked.busy === 0 && Date.now() - tracked.lastActive >= quietMs) socket.destroy()
    }
  }

  return {
    get draining () { return draining },
    start () {
      if (draining) return
      draining = true
      // http's close() would reset every idle connection at once, including those a request is on its way to
      server.closeIdleConnections = closeQuietConnections
      closeQuietConnections()
      sweeper = setInterval(closeQuietConnections, Math.min(100, quietMs))
      sweeper.unref()
    },
  }
}
