import type { Meter } from "@opentelemetry/api";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  METRIC_HTTP_SERVER_REQUEST_DURATION,
} from "@opentelemetry/semantic-conventions";

/**
 * Every metric the backend records, declared once. Names and units follow the OpenTelemetry semantic
 * conventions where one exists (`http.server.request.duration`, seconds, by `http.route`,
 * `http.request.method`, `http.response.status_code`); the messenger's own live under `messenger.`.
 *
 * Attribute values are always from small fixed sets (route patterns, error codes, event names, reasons)
 * or the relay instance's id (one per process): never a user id, token, email, nonce or ciphertext
 * (test/security/telemetry.test.ts checks what a whole session recorded).
 */
export const ATTR = {
  httpMethod: ATTR_HTTP_REQUEST_METHOD,
  httpRoute: ATTR_HTTP_ROUTE,
  httpStatus: ATTR_HTTP_RESPONSE_STATUS_CODE,
  /** `http` or `socket`: which door a send or a refusal came through. */
  transport: "messenger.transport",
  /** Why a send was refused: rate, replay, stale_clock, blocked, validation, receiver_unknown, session. */
  refusalReason: "messenger.refusal.reason",
  /** The rate-limit class (README "Rate limits") that answered 429. */
  rateLimitClass: "messenger.rate_limit.class",
  /** Why the database counted as busy: a gRPC code's name, or `deadline`. */
  busyReason: "messenger.busy.reason",
  /** The relay instance (one per process). */
  relayInstance: "messenger.relay.instance",
  /** `success`, or the error code an authentication was refused with. */
  outcome: "messenger.outcome",
  /** A declared socket event's name (others are `unknown`). */
  socketEvent: "messenger.socket.event",
  /** `received` from a client, or `emitted` to one from the instance's events. */
  direction: "messenger.socket.direction",
} as const;

/** Semantic conventions' advice for HTTP durations, in seconds. */
const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** From an online receiver's tens of milliseconds to an offline one's hours. */
export const DELIVERY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400];
const FEED_LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const ATTEMPT_BUCKETS = [1, 2, 3, 4, 5, 7, 10];

export function createInstruments(meter: Meter) {
  return {
    /** For the observable instruments' batch callbacks. */
    meter,
    httpDuration: meter.createHistogram(METRIC_HTTP_SERVER_REQUEST_DURATION, {
      description: "Duration of HTTP server requests, by route pattern, method and status",
      unit: "s",
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS },
    }),
    messagesStored: meter.createCounter("messenger.messages.stored", {
      description: "Messages stored (a client's retry answered as a duplicate is not counted)",
      unit: "{message}",
    }),
    messagesRefused: meter.createCounter("messenger.messages.refused", {
      description: "Sends refused, by reason",
      unit: "{message}",
    }),
    deliveryDuration: meter.createHistogram("messenger.message.delivery.duration", {
      description: "From a message's server timestamp to its first acknowledgement by the receiver",
      unit: "s",
      advice: { explicitBucketBoundaries: DELIVERY_BUCKETS },
    }),
    authentications: meter.createCounter("messenger.relay.authentications", {
      description: "Socket authentications, by outcome",
      unit: "{authentication}",
    }),
    socketEvents: meter.createCounter("messenger.relay.events", {
      description: "Socket events received from clients and emitted from the instance's events, by type",
      unit: "{event}",
    }),
    rateLimited: meter.createCounter("messenger.rate_limit.refusals", {
      description: "Requests and socket events refused with RATE_LIMITED (429), by rate-limit class",
      unit: "{refusal}",
    }),
    databaseBusy: meter.createCounter("messenger.database.busy", {
      description: "Requests and socket events answered 503 SERVICE_UNAVAILABLE because the database was busy or past its deadline",
      unit: "{refusal}",
    }),
    transactionAttempts: meter.createHistogram("messenger.firestore.transaction.attempts", {
      description: "Attempts a Firestore transaction took (1 when uncontended)",
      unit: "{attempt}",
      advice: { explicitBucketBoundaries: ATTEMPT_BUCKETS },
    }),
    feedLag: meter.createHistogram("messenger.relay.feed.lag", {
      description: "From an event's commit in the instance's feed to its emission on the instance",
      unit: "s",
      advice: { explicitBucketBoundaries: FEED_LAG_BUCKETS },
    }),
    sockets: meter.createObservableGauge("messenger.relay.sockets", {
      description: "Sockets connected to the relay instance",
      unit: "{socket}",
    }),
    listeners: meter.createObservableGauge("messenger.relay.listeners", {
      description: "Firestore snapshot listeners the relay instance holds",
      unit: "{listener}",
    }),
    heartbeatAge: meter.createObservableGauge("messenger.relay.heartbeat.age", {
      description: "Time since the relay instance last wrote its heartbeat",
      unit: "s",
    }),
  };
}

export type Instruments = ReturnType<typeof createInstruments>;
