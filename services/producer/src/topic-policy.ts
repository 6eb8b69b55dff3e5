import { ConfigError, HttpError, isInternalTopic, topicNameProblem } from '@pagestream/core'

/** Decides whether HTTP clients may publish to a topic: legal, not internal, on the allow-list. */
export class TopicPolicy {
  readonly #allowed: ReadonlySet<string>

  /** What is wrong with an allow-list (PRODUCER_TOPICS): topics that may not be published to. */
  static allowListProblems (allowList: readonly string[]): string[] {
    return allowList.flatMap((topic) => {
      const problem = topicNameProblem(topic) ??
        (isInternalTopic(topic) ? 'internal topics cannot be published to' : null)
      return problem === null ? [] : [`PRODUCER_TOPICS: "${topic}" is refused: ${problem}`]
    })
  }

  constructor (allowList: readonly string[]) {
    const problems = TopicPolicy.allowListProblems(allowList)
    if (problems.length > 0) throw new ConfigError(problems)
    this.#allowed = new Set(allowList)
  }

  get topics (): string[] { return [...this.#allowed] }

  /** Throws the client error for a topic that may not be published to. */
  check (topic: string): void {
    const problem = topicNameProblem(topic)
    if (problem !== null) throw new HttpError(400, `invalid topic name: ${problem}`)
    if (isInternalTopic(topic)) {
      throw new HttpError(403,
      `topic "${topic}" is internal to the broker and cannot be published to`)
    }
    if (!this.#allowed.has(topic)) {
      throw new HttpError(403, `topic "${topic}" is not open for publishing (allowed: ${this.topics.join(', ')})`)
    }
  }
}
