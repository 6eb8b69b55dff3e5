import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { Counter, Gauge, type Registry } from 'prom-client'
import { HttpError } from '@pagestream/core'

export interface SseOptions {
  maxClients: number
  /** Bytes a client may leave unread in its socket buffer before it is dropped. */
  clientBufferBytes: number
  /** How long a client's socket may go without draining before it is dropped. */
  stallTimeoutMs: number
  heartbeatMs: number
  /** Events each channel keeps for Last-Event-ID resume. */
  replayEvents: number
  log: FastifyBaseLogger
  metrics: Registry
}

interface Client {
  channel: string
  response: ServerResponse
  /** Set while the socket holds data it has not been able to send; fires the drop. */
  stall: NodeJS.Timeout | undefined
}

type DropReason = 'buffer' | 'stalled'

/** The frame is encoded once and the same bytes are written to every client (10,000 of them, in one loop). */
interface SentEvent { seq: number, frame: Buffer }

const HEARTBEAT = Buffer.from(': heartbeat\n\n')
const RETRY = Buffer.from('retry: 2000\n\n')

/**
 * Server-sent event channels with the etiquette a dashboard needs: ids and Last-Event-ID replay
 * from a bounded history, a heartbeat comment, a client limit (503), and a bound on what a client
 * may leave unread: a client whose socket does not drain is dropped, so memory stays bounded.
 */
export class SseHub {
  readonly #options: SseOptions
  readonly #clients = new Set<Client>()
  /** The same clients by channel, so a broadcast visits only its own. */
  readonly #channels = new Map<string, Set<Client>>()
  readonly #history = new Map<string, SentEvent[]>()
  /**
   * Event ids are `<boot>-<n>`: n counts from 1 in each channel, and every replica (and every restart)
   * has its own boot id, so a Last-Event-ID from another replica behind the same service, or from
   * before a restart, is recognised as unknown instead of "resuming" against an unrelated history.
   */
  readonly #boot = randomBytes(6).toString('hex')
  /** Per channel, so a stream's ids step by 1 whatever the other streams send. */
  readonly #nextSeq = new Map<string, number>()
  readonly #heartbeat: NodeJS.Timeout
  readonly #dropped: Counter<'channel' | 'reason'>

  constructor (options: SseOptions) {
    this.#options = options
    const registers = [options.metrics]
    this.#dropped = new Counter({
      name: 'analytics_sse_clients_dropped_total',
      help: 'SSE clients dropped because they did not read (reason: buffer full, or stalled too long)',
      labelNames: ['channel', 'reason'],
      registers,
    })
    const gauge: Gauge<'channel'> = new Gauge({
      name: 'analytics_sse_clients',
      help: 'connected SSE clients',
      labelNames: ['channel'],
      registers,
      collect: () => {
        gauge.reset()
        // a channel that has sent reads 0 without clients, not "no data" (dashboards, the at-limit alert)
        for (const channel of this.#nextSeq.keys()) gauge.set({ channel }, 0)
        for (const [channel, clients] of this.#channels) if (clients.size > 0) gauge.set({ channel }, clients.size)
      },
    })
    this.#heartbeat = setInterval(() => {
      for (const client of this.#clients) this.#write(client, HEARTBEAT)
    }, options.heartbeatMs)
    this.#heartbeat.unref()
  }

  get clientCount (): number {
    return this.#clients.size
  }

  /** Sends `data` (one JSON line) as the next event of the channel to all its clients. */
  publish (channel: string, data: string): string {
    const seq = this.#nextSeq.get(channel) ?? 1
    this.#nextSeq.set(channel, seq + 1)
    const id = `${this.#boot}-${seq}`
    const event = { seq, frame: Buffer.from(`id: ${id}\ndata: ${data}\n\n`) }
    const history = this.#history.get(channel) ?? []
    history.push(event)
    if (history.length > this.#options.replayEvents) history.splice(0, history.length - this.#options.replayEvents)
    this.#history.set(channel, history)
    for (const client of this.#channels.get(channel) ?? []) this.#write(client, event.frame)
    return id
  }

  /**
   * Takes over the response as an event stream. With Last-Event-ID the events after it that the
   * history still holds are replayed; otherwise (an id of another replica or an earlier run, or
   * one too old) the newest event is sent.
   */
  open (channel: string, request: FastifyRequest, reply: FastifyReply): void {
    if (this.#clients.size >= this.#options.maxClients) {
      throw new HttpError(503, `at most ${this.#options.maxClients} event-stream clients; try again later`, {
        'retry-after': '5',
      })
    }
    // headers hooks set on the reply (CORS) would be lost by hijacking: the stream sends them itself
    const hookHeaders = Object.entries(reply.getHeaders())
    reply.hijack()
    const response = reply.raw
    for (const [name, value] of hookHeaders) if (value !== undefined) response.setHeader(name, value)
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    const client: Client = { channel, response, stall: undefined }
    this.#add(client)
    request.raw.socket.setNoDelay(true)
    response.on('close', () => {
      clearTimeout(client.stall)
      this.#remove(client)
    })
    this.#write(client, RETRY)
    const history = this.#history.get(channel) ?? []
    const header = request.headers['last-event-id']
    const lastSeq = this.#ownSeq(header)
    const resumable = lastSeq !== undefined && history.some((event) => event.seq === lastSeq)
    const replay = resumable ? history.filter((event) => event.seq > lastSeq) : history.slice(-1)
    for (const event of replay) this.#write(client, event.frame)
  }

  /** The sequence number of an id this hub gave out; undefined for any other id. */
  #ownSeq (id: string | string[] | undefined): number | undefined {
    if (typeof id !== 'string') return undefined
    const match = /^([0-9a-f]+)-(\d+)$/.exec(id.trim())
    return match !== null && match[1] === this.#boot ? Number(match[2]) : undefined
  }

  #add (client: Client): void {
    this.#clients.add(client)
    const channel = this.#channels.get(client.channel)
    if (channel === undefined) this.#channels.set(client.channel, new Set([client]))
    else channel.add(client)
  }

  #remove (client: Client): void {
    this.#clients.delete(client)
    this.#channels.get(client.channel)?.delete(client)
  }

  #write (client: Client, frame: Buffer): void {
    const { response } = client
    if (response.destroyed) {
      this.#remove(client)
      return
    }
    if (response.writableLength + frame.length > this.#options.clientBufferBytes) {
      this.#drop(client, 'buffer')
      return
    }
    const flushed = response.write(frame)
    // a slow reader fills the buffer slowly: the clock bounds how long its unsent bytes are held
    if (!flushed && client.stall === undefined) {
      client.stall = setTimeout(() => this.#drop(client, 'stalled'), this.#options.stallTimeoutMs)
      client.stall.unref()
      response.once('drain', () => {
        clearTimeout(client.stall)
        client.stall = undefined
      })
    }
  }

  #drop (client: Client, reason: DropReason): void {
    const { channel, response } = client
    const unread = response.writableLength
    this.#options.log.warn({ channel, reason, unread }, 'dropping an SSE client that does not read')
    this.#dropped.inc({ channel, reason })
    clearTimeout(client.stall)
    this.#remove(client)
    response.destroy()
  }

  /** Ends every stream; a client that does not read cannot drain the end, so its socket is destroyed. */
  close (): void {
    clearInterval(this.#heartbeat)
    for (const { response, stall } of this.#clients) {
      clearTimeout(stall)
      response.end()
      if (response.writableLength > 0) response.destroy()
    }
    this.#clients.clear()
    this.#channels.clear()
  }
}
