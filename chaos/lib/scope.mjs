// A drill's clean-up list, shaped like the test kit's Teardown so its helpers (startRole, createTopics) work here.
export function scope () {
  const closers = []
  return {
    teardown (fn) { closers.push(fn) },
    /** Runs every clean-up, newest first; one that fails does not keep the others from running. */
    async close () {
      const failures = []
      for (const fn of closers.reverse()) {
        try { await fn() } catch (err) { failures.push(err) }
      }
      closers.length = 0
      if (failures.length > 0) throw new AggregateError(failures, `${failures.length} clean-ups failed`)
    },
  }
}
