import ckjs from '@confluentinc/kafka-javascript'
import type { DeliveryReport, LibrdKafkaError, MessageHeader } from '@confluentinc/kafka-javascript'
import type { FastifyBaseLogger } from 'fastify'

/** Where the broker put one record. */
export interface Delivery { partition: number, offset: string }

interface Waiting { resolve: (delivery: Delivery) => void, reject: (err: Error) => void }

/**
 * librdkafka's producer without the KafkaJS layer: one native produce() and one delivery report per
 * record, each with its own partition and offset. The KafkaJS send() wraps every record in several
 * promises and answers per partition; under load those objects outlived young-generation GC and the
 * collector took a quarter of the CPU (profile of POST /events, `make bench` row `batch`).
 */
export class RecordSender {
  readonly #producer: InstanceType<typeof ckjs.Producer>

  private constructor (producer: InstanceType<typeof ckjs.Producer>) {
    this.#producer = producer
  }

  /** properties: librdkafka names (connectionProperties and producerProperties of the core). */
  static async connect (properties: Record<string, unknown>, log: FastifyBaseLogger): Promise<RecordSender> {
    const producer = new ckjs.Producer({ ...properties, dr_cb: true } as ckjs.ProducerGlobalConfig)
    producer.on('delivery-report', (err: LibrdKafkaError | null | undefined, report: DeliveryReport) => {
      const waiting = report.opaque as Waiting
      if (err) waiting.reject(new Error(`broker error ${err.code}: ${err.message}`))
      else waiting.resolve({ partition: report.partition, offset: String(report.offset) })
    })
    producer.on('event.error', (err: LibrdKafkaError) => { log.warn({ err }, 'producer error') })
    await new Promise<void>((resolve, reject) => {
      producer.connect({ timeout: 10_000 }, (err) => { if (err) reject(err); else resolve() })
    })
    // delivery reports are served by a background thread, not by a poll timer
    producer.setPollInBackground(true)
    return new RecordSender(producer)
  }

  /** Resolves once the broker acknowledged the record (acks as configured), rejects when it did not. */
  send (topic: string, key: string, value: Buffer, headers: MessageHeader[]): Promise<Delivery> {
    return new Promise((resolve, reject) => {
      try {
        this.#producer.produce(topic, null, value, key, null, { resolve, reject } satisfies Waiting, headers)
      } catch (err) {
        // a full local queue or a record over message.max.bytes is refused at once
        reject(err instanceof Error ? err : new Error(String(err)))
      }
    })
  }

  flush (timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#producer.flush(timeoutMs, (err) => { if (err) reject(err); else resolve() })
    })
  }

  disconnect (): Promise<void> {
    return new Promise((resolve) => { this.#producer.disconnect(() => resolve()) })
  }
}
