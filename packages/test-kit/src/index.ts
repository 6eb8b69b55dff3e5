// The light helpers every test may load; the heavy ones (browser, chart, schemas, JVM) are subpath exports.
export * from './teardown.js'
export * from './kafka.js'
export * from './wait.js'
export * from './process.js'
export * from './broker.js'
export * from './console.js'
export * from './faulty-client.js'
export * from './metrics.js'
