import {
  type DeadLetterWriter, EVENT_ID_HEADER, InvalidPageEventError, type KafkaMessage, type PageEvent,
  carriedTrace, checkDerivedPageEvent, deadLetterMessage, decodePageEvent, pageEventMessage,
} from '@pagestream/core'

/** The lab's function: the same view with `duration` doubled and `name` and `user` upper-cased. */
export function transformPageEvent (event: PageEvent): PageEvent {
  return {
    name: event.name.toUpperCase(), user: event.user.toUpperCase(), date: event.date, duration: event.duration * 2,
  }
}

export interface TransformedBatch {
  /** Transformed events for the output topic, in input order. */
  outputs: ReturnType<typeof pageEventMessage>[]
  /** Records that are not PageEvents (or whose transform breaks the contract), for the dead-letter topic. */
  deadLetters: ReturnType<typeof deadLetterMessage>[]
  /** The offset to commit: one past the last input record. */
  nextOffset: string
}

type HeaderValue = Buffer | string | Array<Buffer | string> | undefined

function headerText (value: HeaderValue): string | undefined {
  const first = Array.isArray(value) ? value[0] : value
  return first === undefined ? undefined : first.toString()
}

/**
 * The input's event id when it has one, so a record can be traced from R1 to R3; otherwise an id
 * derived from where the record was read, which stays the same however often the batch is retried.
 */
export function traceId (source: { topic: string, partition: number, message: KafkaMessage }): string {
  return headerText(
    source.message.headers?.[EVENT_ID_HEADER]
  ) ?? `${source.topic}:${source.partition}:${source.message.offset}`
}

/**
 * Turns one partition's batch of input records into the records one transaction writes.
 * The output is checked again: upper-casing can lengthen a name ("ß" -> "SS") and doubling can
 * leave the safe-integer range, and such an event must not reach R3 as if it were valid (the date,
 * already parsed and normalised, is not parsed twice).
 */
export function transformBatch (
  topic: string, partition: number, messages: KafkaMessage[], writer: DeadLetterWriter = { role: 'transformer' }
): TransformedBatch {
  const outputs: TransformedBatch['outputs'] = []
  const deadLetters: TransformedBatch['deadLetters'] = []
  for (const message of messages) {
    const source = { topic, partition, message }
    try {
      const transformed = checkDerivedPageEvent(transformPageEvent(decodePageEvent(message.value)))
      const output = pageEventMessage(transformed, traceId(source))
      // the input's trace goes on to R3 (the stream task turns it into a child of this record's processing)
      const carried = carriedTrace(message)
      outputs.push(carried === undefined ? output : { ...output, headers: { ...output.headers, ...carried } })
    } catch (err) {
      if (!(err instanceof InvalidPageEventError)) throw err
      deadLetters.push(deadLetterMessage(source, err, writer))
    }
  }
  const last = messages.at(-1)
  if (last === undefined) throw new Error('transformBatch needs at least one record')
  return { outputs, deadLetters, nextOffset: (BigInt(last.offset) + 1n).toString() }
}
