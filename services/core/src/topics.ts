/** What Kafka accepts as a topic name (besides "." and ".."). */
export const LEGAL_TOPIC_PATTERN = '^[a-zA-Z0-9._-]{1,249}$'
const LEGAL_TOPIC = new RegExp(LEGAL_TOPIC_PATTERN)

/** Why Kafka would refuse this topic name, or null when it is a legal name. */
export function topicNameProblem (name: string): string | null {
  if (name === '.' || name === '..') return `"${name}" is not a legal topic name`
  if (!LEGAL_TOPIC.test(name)) {
    return 'topic names are 1 to 249 characters of ASCII letters, digits, ".", "_" and "-"'
  }
  return null
}

/** Kafka's own topics (__consumer_offsets, __transaction_state…) and Redpanda's (_schemas…) start with "_". */
export function isInternalTopic (name: string): boolean {
  return name.startsWith('_')
}

export function deadLetterTopic (topic: string): string {
  return `${topic}.dlq`
}

export interface TopicSpec {
  topic: string
  /** Kafka topic configs, for example cleanup.policy=compact for a changelog. */
  config?: Record<string, string>
}
