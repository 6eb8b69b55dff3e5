// A minimal event-stream reader for the rows: calls back with each event's id and data as they arrive.
import http from 'node:http'

/** Opens `url` as an event stream; returns close(). onEvent(id, data, receivedAt) per complete event. */
export function readEvents (url, onEvent) {
  let buffered = ''
  const request = http.get(url, { headers: { accept: 'text/event-stream' } }, (response) => {
    response.setEncoding('utf8')
    response.on('data', (chunk) => {
      const receivedAt = performance.now()
      buffered += chunk
      let end
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const frame = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        let id
        let data
        for (const line of frame.split('\n')) {
          if (line.startsWith('id: ')) id = line.slice(4)
          else if (line.startsWith('data: ')) data = line.slice(6)
        }
        if (data !== undefined) onEvent(id, data, receivedAt)
      }
    })
  })
  request.on('error', () => {})
  return () => request.destroy()
}
