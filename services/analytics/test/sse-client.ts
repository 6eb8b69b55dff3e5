import { type ClientRequest, type IncomingMessage, request } from 'node:http'

export interface SseEvent { id: string | undefined, data: string }

/** A minimal EventSource for tests: parses frames, keeps comments, exposes the raw response. */
export class SseClient {
  readonly events: SseEvent[] = []
  readonly comments: string[] = []
  status = 0
  body = ''
  response: IncomingMessage | undefined
  #request: ClientRequest | undefined
  #buffer = ''

  static open (url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient()
    return new Promise((resolve, reject) => {
      client.#request = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
        client.response = response
        client.status = response.statusCode ?? 0
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          if (client.status !== 200) { client.body += chunk; return }
          client.#parse(chunk)
        })
        response.on('error', () => {})
        if (client.status !== 200) response.on('end', () => resolve(client))
        else resolve(client)
      })
      client.#request.on('error', reject)
      client.#request.end()
    })
  }

  latest (): Record<string, number> | undefined {
    const last = this.events.at(-1)
    return last === undefined ? undefined : JSON.parse(last.data) as Record<string, number>
  }

  #parse (chunk: string): void {
    this.#buffer += chunk
    let end: number
    while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
      const frame = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      let id: string | undefined
      const data: string[] = []
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim())
        else if (line.startsWith('id: ')) id = line.slice(4)
        else if (line.startsWith('data: ')) data.push(line.slice(6))
      }
      if (data.length > 0) this.events.push({ id, data: data.join('\n') })
    }
  }

  close (): void {
    this.#request?.destroy()
  }
}
