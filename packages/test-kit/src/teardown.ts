/** What a helper needs of a tap test: somewhere to register the clean-up of what it opened. */
export interface Teardown { teardown(fn: () => unknown): void }
