import t from 'tap'
import pino from 'pino'
import ckjs from '@confluentinc/kafka-javascript'
import { TransactionalProducer, isFenced } from '@pagestream/core'
import { createTopics, faultyClient, uniqueName } from '@pagestream/test-kit'

const { ErrorCodes } = ckjs.KafkaJS
const log = pino({ level: 'silent' })

t.test('fencing is read from the error code, not from the flags', async (t) => {
  t.ok(isFenced({ code: ErrorCodes.ERR__FENCED }))
  t.ok(isFenced({ code: ErrorCodes.ERR_PRODUCER_FENCED }))
  t.notOk(isFenced({ code: ErrorCodes.ERR__TIMED_OUT, fatal: true }))
  t.notOk(isFenced(new Error('no code')))
  t.notOk(isFenced(undefined))
})

t.test('an open transaction is aborted; ' +
  'a producer that cannot begin one is replaced; a commit goes through', async (t) => {
  const topic = uniqueName('core-txn')
  await createTopics(t, [topic])
  const { client, producers } = faultyClient(t, { transactionFails: 1 })
  const closing = new AbortController()
  let replaced = 0
  const errors: string[] = []
  const producer = await TransactionalProducer.open({
    client,
    transactionalId: uniqueName('core-txn-id'),
    log,
    closing: closing.signal,
    failures: () => 1,
    onReplaced: () => { replaced += 1 },
    onError: (err) => { errors.push(err.message) },
  })
  t.teardown(() => producer.close())
  t.ok(producer.ready)

  const first = producer.current!
  const failure = await first.transaction().then(() => undefined, (err: Error) => err)
  t.match(failure?.message, /injected/)
  t.equal(await producer.abortOrReplace(failure!), 'replaced',
    'a producer with no open transaction to abort is replaced')
  t.equal(replaced, 1)
  t.equal(producers(), 2)
  t.not(producer.current, first, 'the replacement is a new producer')
  t.ok(producer.ready)

  const second = producer.current!
  await second.transaction()
  await second.send({ topic, messages: [{ key: 'k', value: 'aborted' }] })
  t.equal(await producer.abortOrReplace(new Error('send failed')), 'aborted',
    'an open transaction is aborted on the same producer')
  t.equal(producer.current, second)

  await second.transaction()
  await second.send({ topic, messages: [{ key: 'k', value: 'committed' }] })
  await producer.commit()
  t.same(errors, [])

  await producer.close()
  t.notOk(producer.ready, 'not ready once closed')
  t.equal(await producer.abortOrReplace(new Error('late')), 'closing')
})

t.test('a failure that says fenced is not aborted nor replaced', async (t) => {
  const { client, producers } = faultyClient(t, {})
  const producer = await TransactionalProducer.open({
    client,
    transactionalId: uniqueName(
      'core-fenced-id'
    ),
    log,
    closing: new AbortController().signal,
    failures: () => 0,
  })
  t.teardown(() => producer.close())
  const fenced = Object.assign(new Error('fenced (injected)'), { code: ErrorCodes.ERR__FENCED })
  t.equal(await producer.abortOrReplace(fenced), 'fenced')
  t.equal(producers(), 1, 'no replacement: it would fence the newer instance back')
})
