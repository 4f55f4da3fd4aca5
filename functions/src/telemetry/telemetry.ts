import { context, SpanKind, SpanStatusCode, trace, type Attributes, type BatchObservableResult, type Tracer } from "@opentelemetry/api";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import type { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import type { RequestHandler, Router } from "express";
import type { Firestore, Settings as FirestoreSettings } from "firebase-admin/firestore";
import type { AppConfig, RuntimeMode } from "../config";
import { AppError } from "../shared/errors";
import { FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";
import type { Logger } from "../shared/logger";
import { exportersFor, type ServiceName } from "./exporters";
import { httpTelemetry } from "./http";
import { ATTR, createInstruments, type Instruments } from "./instruments";
import { localTelemetryRoutes } from "./status";
import { correlatedLogger, createTracerProvider, installContextManager } from "./tracing";

/**
 * Operations you can see (issue 19): the one object through which the backend records metrics and
 * traces. Capability code calls the recording methods below at the one place each thing is decided and
 * knows nothing of exporters; createTelemetry picks those by environment (exporters.ts). With
 * TELEMETRY=off (or no telemetry given to createApp) every method does nothing.
 */
export type Transport = "http" | "socket";

/** How a send ended, as the send flow's callers see it. */
export type SendOutcome = { stored: boolean } | { errorCode: string | undefined };

/** The contract's code of an error a client is answered with (undefined: a 500). */
export const errorCodeOf = (error: unknown): string | undefined => (error instanceof AppError ? error.code : undefined);

export interface RelayProbe {
  sockets(): number;
  listeners(): number;
  /** When the instance last wrote its heartbeat (epoch ms), if it has. */
  lastHeartbeatMs(): number | undefined;
}

/** One relay instance's recording points (its id is an attribute of each). */
export interface RelayTelemetry {
  authenticated(outcome: "success" | string): void;
  /**
   * A socket event from a client: counted, and traced as a span of its own that ends when its ack is
   * called (or at once without one). Runs `next` inside the span; `packet` is Socket.IO's middleware packet.
   */
  traceEvent(packet: unknown[], next: () => void): void;
  /** An event of the instance (from its feed, or handed over in-process) about to be emitted to sockets. */
  emitted(type: string, createdAtMs: number, fromFeed: boolean): void;
  /** A socket event answered with an error: counts 429s by class and 503s for a busy database. */
  failed(source: string, error: unknown): void;
  stop(): void;
}

export interface Telemetry {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  /** Mount first: a server span per request, `http.server.request.duration` when it ends. */
  readonly http: RequestHandler;
  /** Local stack and tests only: GET /metrics (Prometheus text) and the /status dashboard. */
  readonly localRoutes?: Router;
  /** Tests: the spans ended so far. */
  readonly spans?: InMemorySpanExporter;
  /** The logger, each line of a request or socket event carrying its trace (Cloud Logging's fields). */
  correlate(logger: Logger): Logger;
  /**
   * Before the database's first use: counts attempts per transaction, and returns the settings that put
   * the Admin SDK's own spans under ours (applied with the others: shared/firestore.ts).
   */
  instrumentFirestore(db: Firestore): FirestoreSettings;
  send(transport: Transport, outcome: SendOutcome): void;
  /** The first acknowledgement of a message stored at `sentAt`. */
  delivered(sentAt: Date, deliveredAt: Date): void;
  rateLimited(limitClass: string, transport: Transport): void;
  /** A 503: `error` is the Firestore error or the deadline's AppError. */
  databaseBusy(error: unknown, transport: Transport): void;
  relay(instanceId: string, clientEvents: readonly string[], probe: RelayProbe): RelayTelemetry;
  /** Exports what is pending (production) and stops. */
  shutdown(): Promise<void>;
}

/** Why a send was refused, from the error code it was refused with (others are not refusals: 5xx). */
const REFUSAL_REASONS: Partial<Record<string, string>> = {
  RATE_LIMITED: "rate",
  REPLAY_DETECTED: "replay",
  STALE_TIMESTAMP: "stale_clock",
  BLOCKED: "blocked",
  VALIDATION_ERROR: "validation",
  PAYLOAD_TOO_LARGE: "validation",
  UNSUPPORTED_MEDIA_TYPE: "validation",
  NOT_FOUND: "receiver_unknown",
  UNAUTHORIZED: "session",
  TOKEN_EXPIRED: "session",
  FORBIDDEN: "session",
};

const GRPC_NAMES = new Map<number, string>(Object.entries(FIRESTORE_CODES).map(([name, code]) => [code, name.toLowerCase()]));

export interface TelemetryOptions {
  service: ServiceName;
  /** Export as in this mode instead of the configuration's (benchmarks: "local", so no span is kept). */
  exportAs?: RuntimeMode;
}

export function createTelemetry(config: AppConfig, options: TelemetryOptions): Telemetry {
  if (!config.telemetry.enabled) return noTelemetry;
  installContextManager();
  const exporters = exportersFor(options.exportAs ?? config.mode, options.service, config.telemetry.exportIntervalMs);
  const meterProvider = new MeterProvider({ resource: exporters.resource, readers: [exporters.metricReader] });
  const tracerProvider = createTracerProvider(exporters.resource, config.telemetry.sampleRatio, exporters.spanProcessors);
  const instruments = createInstruments(meterProvider.getMeter("messenger"));
  const tracer = tracerProvider.getTracer("messenger");
  const recorder = recorderOf(instruments);
  const instrumented = new WeakSet<Firestore>();
  const local = exporters.prometheus ? localTelemetryRoutes(exporters.prometheus) : undefined;
  return {
    enabled: true,
    tracer,
    http: httpTelemetry(tracer, instruments, recorder),
    localRoutes: local?.routes,
    spans: exporters.spans,
    correlate: (logger) => correlatedLogger(logger, config.projectId),
    instrumentFirestore(db) {
      if (!instrumented.has(db)) countTransactionAttempts(db, instruments);
      instrumented.add(db);
      // The Admin SDK's own spans (one per call, with its retries), parented by the active span.
      return { openTelemetry: { tracerProvider } };
    },
    ...recorder,
    relay: (instanceId, clientEvents, probe) => relayTelemetry(tracer, instruments, recorder, instanceId, clientEvents, probe),
    async shutdown() {
      local?.stop();
      await Promise.allSettled([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
}

export type Recorder = Pick<Telemetry, "send" | "delivered" | "rateLimited" | "databaseBusy">;

function recorderOf(instruments: Instruments): Recorder {
  return {
    send(transport, outcome) {
      if ("stored" in outcome) {
        if (outcome.stored) instruments.messagesStored.add(1, { [ATTR.transport]: transport });
        return;
      }
      const reason = outcome.errorCode && REFUSAL_REASONS[outcome.errorCode];
      if (reason) instruments.messagesRefused.add(1, { [ATTR.transport]: transport, [ATTR.refusalReason]: reason });
    },
    delivered(sentAt, deliveredAt) {
      instruments.deliveryDuration.record(Math.max(0, deliveredAt.getTime() - sentAt.getTime()) / 1000);
    },
    rateLimited(limitClass, transport) {
      instruments.rateLimited.add(1, { [ATTR.rateLimitClass]: limitClass, [ATTR.transport]: transport });
    },
    databaseBusy(error, transport) {
      // A raw Firestore error, busyDatabaseError's 503 (its gRPC code in details), or the deadline's 503.
      const details = error instanceof AppError ? error.details : undefined;
      const code = typeof details?.grpcCode === "number" ? details.grpcCode : firestoreCodeOf(error);
      const reason = code !== undefined ? (GRPC_NAMES.get(code) ?? "other") : error instanceof AppError ? "deadline" : "other";
      instruments.databaseBusy.add(1, { [ATTR.busyReason]: reason, [ATTR.transport]: transport });
    },
  };
}

/** Counts the attempts of every transaction on `db` (the SDK retries contended ones from the start). */
function countTransactionAttempts(db: Firestore, instruments: Instruments): void {
  const runTransaction = db.runTransaction.bind(db) as (update: (tx: unknown) => Promise<unknown>, options?: object) => Promise<unknown>;
  const counted = (update: (tx: unknown) => Promise<unknown>, options?: object) => {
    let attempts = 0;
    const record = (outcome: string) => instruments.transactionAttempts.record(attempts, { [ATTR.outcome]: outcome });
    return runTransaction((tx) => {
      attempts += 1;
      return update(tx);
    }, options).then(
      (result) => {
        record("committed");
        return result;
      },
      (error: unknown) => {
        record("not_committed");
        throw error;
      },
    );
  };
  Object.defineProperty(db, "runTransaction", { value: counted, configurable: true, writable: true });
}

/** The rate-limit class behind a socket event's RATE_LIMITED (README "Rate limits"). */
const SOCKET_LIMIT_CLASSES: Record<string, string> = {
  send_message: "send",
  typing_start: "typing",
  typing_stop: "typing",
  authenticate: "socketAuth",
};

function relayTelemetry(tracer: Tracer, instruments: Instruments, recorder: Recorder, instanceId: string, clientEvents: readonly string[], probe: RelayProbe): RelayTelemetry {
  const instance = { [ATTR.relayInstance]: instanceId };
  const known = new Set(clientEvents);
  const observe = (result: BatchObservableResult) => {
    result.observe(instruments.sockets, probe.sockets(), instance);
    result.observe(instruments.listeners, probe.listeners(), instance);
    const beat = probe.lastHeartbeatMs();
    if (beat !== undefined) result.observe(instruments.heartbeatAge, Math.max(0, Date.now() - beat) / 1000, instance);
  };
  const observables = [instruments.sockets, instruments.listeners, instruments.heartbeatAge];
  const { meter } = instruments;
  meter.addBatchObservableCallback(observe, observables);
  return {
    authenticated(outcome) {
      instruments.authentications.add(1, { ...instance, [ATTR.outcome]: outcome });
    },
    traceEvent(packet, next) {
      const name = typeof packet[0] === "string" && known.has(packet[0]) ? packet[0] : "unknown";
      const attributes: Attributes = { ...instance, [ATTR.socketEvent]: name, [ATTR.direction]: "received" };
      instruments.socketEvents.add(1, attributes);
      const span = tracer.startSpan(`socket ${name}`, { kind: SpanKind.SERVER, attributes: { ...instance, [ATTR.socketEvent]: name } });
      const last = packet.length - 1;
      const ack = packet[last];
      if (last >= 1 && typeof ack === "function") {
        packet[last] = (response: { success?: boolean; error?: { code?: string } } | undefined, ...rest: unknown[]) => {
          // A refusal the client caused (4xx) is an answer, as for HTTP server spans; a 5xx is an error.
          const code = response?.success === false ? response.error?.code : undefined;
          if (code === "INTERNAL_ERROR" || code === "SERVICE_UNAVAILABLE") span.setStatus({ code: SpanStatusCode.ERROR, message: code });
          span.end();
          return (ack as (...args: unknown[]) => unknown)(response, ...rest);
        };
        context.with(trace.setSpan(context.active(), span), next);
      } else {
        context.with(trace.setSpan(context.active(), span), next);
        span.end();
      }
    },
    emitted(type, createdAtMs, fromFeed) {
      instruments.socketEvents.add(1, { ...instance, [ATTR.socketEvent]: type, [ATTR.direction]: "emitted" });
      if (fromFeed) instruments.feedLag.record(Math.max(0, Date.now() - createdAtMs) / 1000, instance);
    },
    failed(source, error) {
      const code = errorCodeOf(error);
      if (code === "RATE_LIMITED") recorder.rateLimited(SOCKET_LIMIT_CLASSES[source] ?? "socketEvents", "socket");
      else if (code === "SERVICE_UNAVAILABLE") recorder.databaseBusy(error, "socket");
    },
    stop() {
      meter.removeBatchObservableCallback(observe, observables);
    },
  };
}

/** Everything off: what createApp uses without telemetry, and TELEMETRY=off. */
export const noTelemetry: Telemetry = ((): Telemetry => {
  const tracer = trace.getTracer("messenger-off");
  return {
    enabled: false,
    tracer,
    http: (_req, _res, next) => next(),
    correlate: (logger) => logger,
    instrumentFirestore: () => ({}),
    send: () => undefined,
    delivered: () => undefined,
    rateLimited: () => undefined,
    databaseBusy: () => undefined,
    relay: () => ({ authenticated: () => undefined, traceEvent: (_packet, next) => next(), emitted: () => undefined, failed: () => undefined, stop: () => undefined }),
    shutdown: async () => undefined,
  };
})();
