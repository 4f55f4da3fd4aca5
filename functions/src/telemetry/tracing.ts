import { context, trace, TraceFlags, type Context, type TextMapGetter, type TextMapPropagator, type TextMapSetter } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import { BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { IncomingHttpHeaders } from "node:http";
import type { LogFields, Logger } from "../shared/logger";

let contextManagerInstalled = false;

/**
 * The active span follows the request through awaits (AsyncLocalStorage). Installed once per process,
 * whatever the number of apps in it (tests run several): the context API is global, tracer providers are not.
 */
export function installContextManager(): void {
  if (contextManagerInstalled) return;
  contextManagerInstalled = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

const CLOUD_TRACE_HEADER = "x-cloud-trace-context";
/** `TRACE_ID/SPAN_ID;o=OPTIONS`: 32 hex digits, the span id in decimal, o=1 when sampled. */
const CLOUD_TRACE_FORMAT = /^([0-9a-f]{32})\/(\d{1,20})(?:;o=([0-9]+))?$/i;

/**
 * Google's `X-Cloud-Trace-Context`, read only (nothing here calls out). Google's own propagator package
 * is deprecated in favour of W3C Trace Context (which Google's front ends also send now), and prints a
 * warning on load, so these few lines stand in for it.
 */
export const cloudTraceContextPropagator: TextMapPropagator = {
  inject(_context: Context, _carrier: unknown, _setter: TextMapSetter) {
    // Outgoing calls carry `traceparent` only.
  },
  extract(active: Context, carrier: unknown, getter: TextMapGetter): Context {
    const raw = getter.get(carrier, CLOUD_TRACE_HEADER);
    const header = Array.isArray(raw) ? raw[0] : raw;
    const match = typeof header === "string" ? CLOUD_TRACE_FORMAT.exec(header.trim()) : null;
    if (!match) return active;
    let spanId: string;
    try {
      spanId = BigInt(match[2]!).toString(16).padStart(16, "0");
    } catch {
      return active;
    }
    if (spanId.length !== 16) return active;
    const spanContext = { traceId: match[1]!.toLowerCase(), spanId, traceFlags: match[3] === "1" ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true };
    return trace.isSpanContextValid(spanContext) ? trace.setSpanContext(active, spanContext) : active;
  },
  fields: () => [CLOUD_TRACE_HEADER],
};

/**
 * A caller's trace context: W3C `traceparent` and Google's `X-Cloud-Trace-Context` (set by Google's
 * front end when a request arrives without one). When both are present, `traceparent` wins (last extractor).
 */
export const traceContextPropagator: TextMapPropagator = new CompositePropagator({
  propagators: [cloudTraceContextPropagator, new W3CTraceContextPropagator()],
});

export function extractTraceContext(headers: IncomingHttpHeaders): Context {
  return traceContextPropagator.extract(context.active(), headers, {
    get: (carrier, key) => carrier[key.toLowerCase()],
    keys: (carrier) => Object.keys(carrier),
  });
}

/**
 * Our own tracer provider (never registered globally, so apps in one process keep theirs apart). Root
 * traces are recorded at `sampleRatio`; a caller's decision (`traceparent`'s sampled flag) is followed.
 */
export function createTracerProvider(resource: Resource, sampleRatio: number, spanProcessors: SpanProcessor[]): BasicTracerProvider {
  return new BasicTracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(sampleRatio) }),
    spanProcessors,
  });
}

/**
 * Cloud Logging's fields that put a log line under its trace: `logging.googleapis.com/trace`
 * (`projects/<project>/traces/<traceId>`), `spanId`, `trace_sampled`. Empty outside a span.
 */
export function traceLogFields(projectId: string): LogFields {
  const span = trace.getSpan(context.active());
  const spanContext = span?.spanContext();
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return {};
  return {
    "logging.googleapis.com/trace": `projects/${projectId}/traces/${spanContext.traceId}`,
    "logging.googleapis.com/spanId": spanContext.spanId,
    "logging.googleapis.com/trace_sampled": (spanContext.traceFlags & 1) === 1,
  };
}

/** The same logger, each line carrying the active span's trace fields (traceLogFields). */
export function correlatedLogger(logger: Logger, projectId: string): Logger {
  const withTrace = (fields: LogFields | undefined) => ({ ...traceLogFields(projectId), ...fields });
  return {
    debug: (message, fields) => logger.debug(message, withTrace(fields)),
    info: (message, fields) => logger.info(message, withTrace(fields)),
    warn: (message, fields) => logger.warn(message, withTrace(fields)),
    error: (message, fields) => logger.error(message, withTrace(fields)),
  };
}

