import { MetricExporter } from "@google-cloud/opentelemetry-cloud-monitoring-exporter";
import { TraceExporter } from "@google-cloud/opentelemetry-cloud-trace-exporter";
import { GcpDetectorSync } from "@google-cloud/opentelemetry-resource-util";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { detectResources, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { PeriodicExportingMetricReader, type MetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { RuntimeMode } from "../config";

/** Which process is reporting: the API (Cloud Function or local stack) or the relay on its own (Cloud Run). */
export type ServiceName = "messenger-api" | "messenger-relay";

export interface Exporters {
  resource: Resource;
  metricReader: MetricReader;
  spanProcessors: SpanProcessor[];
  /** Locally and in tests: the reader that renders Prometheus text for GET /metrics (pulled, never pushed). */
  prometheus?: PrometheusExporter;
  /** In tests: every span ended, to assert on. */
  spans?: InMemorySpanExporter;
}

/**
 * Where metrics and traces go, by environment:
 * - production: Cloud Monitoring (metrics under workload.googleapis.com/, pushed every
 *   METRICS_EXPORT_INTERVAL_SECONDS) and Cloud Trace (batched), as the runtime's service account
 *   (roles/monitoring.metricWriter, roles/cloudtrace.agent: docs/DEPLOY.md), the monitored resource
 *   detected from the metadata server;
 * - local stack: Prometheus text at GET /metrics, read on demand; spans are kept only long enough to put
 *   their ids in log lines. Nothing dials out;
 * - tests: the same Prometheus reader, and spans in memory.
 */
export function exportersFor(mode: RuntimeMode, service: ServiceName, exportIntervalMs: number): Exporters {
  const named = resourceFromAttributes({ [ATTR_SERVICE_NAME]: service });
  if (mode === "production") {
    return {
      resource: detectResources({ detectors: [new GcpDetectorSync()] }).merge(named),
      metricReader: new PeriodicExportingMetricReader({ exporter: new MetricExporter(), exportIntervalMillis: exportIntervalMs }),
      spanProcessors: [new BatchSpanProcessor(new TraceExporter())],
    };
  }
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  if (mode === "local") return { resource: named, metricReader: prometheus, spanProcessors: [], prometheus };
  const spans = new InMemorySpanExporter();
  return { resource: named, metricReader: prometheus, spanProcessors: [new SimpleSpanProcessor(spans)], prometheus, spans };
}
