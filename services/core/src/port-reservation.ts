import { type Server, type Socket, createServer } from 'node:net'

/** A listening socket that holds the HTTP port while the role starts, so a taken port fails before Kafka is touched. */
export interface PortReservation {
  /** The bound port (the one the OS chose when 0 was asked for). */
  port: number
  /** Frees the port for the real HTTP server. */
  release(): Promise<void>
}

/** Binds host:port at once; rejects with the bind error (EADDRINUSE, EACCES, EADDRNOTAVAIL). */
export async function reservePort (host: string, port: number): Promise<PortReservation> {
  const sockets = new Set<Socket>()
  // a client that connects during start-up is turned away, as if nothing listened yet
  const server: Server = createServer((socket) => { socket.destroy() })
  server.on('connection', (socket) => { sockets.add(socket) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    release: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}
