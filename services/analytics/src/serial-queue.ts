/** Runs tasks one after another: batches, commits and rebalances never interleave. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()

  run<T> (task: () => T | Promise<T>): Promise<T> {
    const result = this.#tail.then(task)
    this.#tail = result.then(() => undefined, () => undefined)
    return result
  }
}
