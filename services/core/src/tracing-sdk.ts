import * as api from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

/**
 * The OpenTelemetry SDK, loaded only when tracing is on: OTLP over HTTP/protobuf to `tracesUrl` (the SDK
 * reads the other OTEL_EXPORTER_OTLP_* variables: headers, timeout), W3C trace context, batched export.
 */
export function startSdk (serviceName: string, tracesUrl: string) {
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the role's name
  const resource = resourceFromAttributes({ 'service.name': serviceName })
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl }))],
  })
  provider.register({ propagator: new W3CTraceContextPropagator() })
  return {
    api,
    tracer: api.trace.getTracer('pagestream'),
    /** Exports what is buffered, then stops. */
    shutdown: () => provider.shutdown(),
  }
}
