import { HttpError, InvalidPageEventError, type PageEvent, parsePageEvent, randomPageEvent } from '@pagestream/core'

export type EventBodyCheck = (body: unknown) => { value: PageEvent[] } | { error: Error }

/**
 * Checks a POST /events body (a PageEvent or an array of 1 to maxBatch) once, with the contract
 * the processors apply to records from Kafka: no type coercion, a 400 naming the first bad field.
 */
export function eventBodyCheck (maxBatch: number): EventBodyCheck {
  return (body) => {
    const batch = Array.isArray(body)
    const inputs: unknown[] = batch ? body : [body]
    if (batch && (inputs.length < 1 || inputs.length > maxBatch)) {
      return { error: new Error(`body must be 1 to ${maxBatch} PageEvents (got ${inputs.length})`) }
    }
    const events: PageEvent[] = []
    for (const [index, input] of inputs.entries()) {
      try {
        events.push(parsePageEvent(input))
      } catch (err) {
        if (!(err instanceof InvalidPageEventError)) throw err
        const path = ['body', ...(batch ? [String(index)] : []), ...(err.field === '' ? [] : [err.field])].join('.')
        return { error: new Error(`${path} ${err.reason}`) }
      }
    }
    return { value: events }
  }
}

/**
 * The lab's event for a page named in the path, held to the same contract: the limits of a name are
 * those the processors apply (256 UTF-16 code units, where the HTTP schema would count code points).
 */
export function labEvent (name: string, users: readonly string[]): PageEvent {
  try {
    return parsePageEvent(randomPageEvent({ pages: [name], users }))
  } catch (err) {
    if (err instanceof InvalidPageEventError && err.field === 'name') {
      throw new HttpError(400,
      `params.name ${err.reason}`)
    }
    throw err
  }
}
