import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './process.js'

/** A record as a JVM client saw it: key and value as strings (a Long value in decimal). */
export interface JvmRecord { key: string | null, value: string, partition: number, offset: number }

const TOOL = join(ROOT, 'packages', 'test-kit', 'jvm', 'KafkaTool.java')

/** The Kafka jars deploy/local/broker.sh resolved (`broker.sh jars`): they hold the Java client. */
function kafkaClasspath (): string {
  const pom = readFileSync(join(ROOT, 'deploy', 'local', 'pom.xml'), 'utf8')
  const version = /<kafka\.version>(.+)<\/kafka\.version>/.exec(pom)?.[1]
  const cache = process.env.PAGESTREAM_CACHE ?? join(homedir(), '.cache', 'pagestream')
  return join(cache, `kafka-${version ?? 'unknown'}`, 'libs', '*')
}

const encode = (text: string | null) => text === null ? '-' : Buffer.from(text, 'utf8').toString('base64')
const decode = (field: string) => field === '-' ? null : Buffer.from(field, 'base64').toString('utf8')

function runTool (args: string[], input: string, timeoutMs: number): Promise<JvmRecord[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('java', ['-cp', kafkaClasspath(), TOOL, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    // compiling the single-file program takes a few seconds before the client even starts
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs + 30_000)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code !== 0) {
        const tail = stderr.trim().split('\n').slice(-5).join(' | ')
        reject(new Error(`java KafkaTool ${args[0]} exited ${code ?? signal}: ${tail}`))
        return
      }
      resolve(stdout.split('\n').filter((line) => line !== '').map((line) => {
        const [key = '-', value = '-', partition = '-1', offset = '-1'] = line.split(' ')
        return { key: decode(key), value: decode(value) ?? '', partition: Number(partition), offset: Number(offset) }
      }))
    })
    child.stdin.end(input)
  })
}

/** Produces with the Java client (StringSerializer, its default partitioner) and says where each record landed. */
export function jvmProduce (
  brokers: string, topic: string, records: Array<{ key: string | null, value: string }>, timeoutMs = 30_000
): Promise<JvmRecord[]> {
  const input = records.map(({ key, value }) => `${encode(key)} ${encode(value)}\n`).join('')
  return runTool(['produce', brokers, topic], input, timeoutMs)
}

/**
 * Reads `count` records of every partition from the beginning with the Java client: StringDeserializer keys,
 * StringDeserializer or LongDeserializer values. Fails when fewer arrive before the deadline.
 */
export function jvmConsume (
  brokers: string, topic: string,
  options: { count: number, valueType: 'string' | 'long', timeoutMs?: number, readCommitted?: boolean }
): Promise<JvmRecord[]> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const isolation = options.readCommitted === false ? 'read_uncommitted' : 'read_committed'
  const args = ['consume', brokers, topic, String(options.count), options.valueType, String(timeoutMs), isolation]
  return runTool(args, '', timeoutMs)
}
