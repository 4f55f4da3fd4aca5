import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Tracer } from "@opentelemetry/api";
import type { RequestHandler, Response } from "express";
import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions";
import { ATTR, type Instruments } from "./instruments";
import type { Recorder } from "./telemetry";
import { extractTraceContext } from "./tracing";

/** What the app's HTTP layer leaves in res.locals for telemetry (shared/http.ts, shared/endpoint-limits.ts). */
interface HttpLocals {
  /** The matched route pattern (requestLogger), e.g. /api/messages/{contactId} as `:contactId`. */
  route?: string;
  /** The error code answered, if any (errorHandler). */
  errorCode?: string;
  /** The endpoint rate class that refused the request (createEndpointLimits). */
  rateLimitClass?: string;
  /** Why a 503 was answered for the database: its error, or the deadline's. */
  busyCause?: unknown;
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);
/** The send operation, whose outcome is counted as messages stored or refused. */
const SEND_ROUTE = "/api/messages/send";
/** Limits applied inside a flow rather than by an endpoint class (README "Rate limits"). */
const FLOW_LIMIT_CLASSES: Record<string, string> = {
  "/api/auth/login": "login",
  "/api/auth/change-password": "login",
  "/api/messages/send": "send",
  "/api/files/upload": "upload",
};

/**
 * A server span per request (named `METHOD route`, the caller's `traceparent` or `X-Cloud-Trace-Context`
 * as its parent) in which the rest of the app runs, and `http.server.request.duration` when the answer
 * is written. Attributes are the route pattern, never the path: no ids.
 */
export function httpTelemetry(tracer: Tracer, instruments: Instruments, recorder: Recorder): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const method = KNOWN_METHODS.has(req.method) ? req.method : "_OTHER";
    const parent = extractTraceContext(req.headers);
    const span = tracer.startSpan(method, { kind: SpanKind.SERVER, attributes: { [ATTR.httpMethod]: method } }, parent);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const locals = res.locals as HttpLocals;
      const route = locals.route || undefined;
      const status = res.statusCode;
      // The client went away before the answer was written: not a status the client saw.
      const aborted = !res.writableFinished;
      const attributes: Attributes = {
        [ATTR.httpMethod]: method,
        [ATTR.httpStatus]: status,
        ...(route ? { [ATTR.httpRoute]: route } : {}),
        ...(aborted ? { [ATTR_ERROR_TYPE]: "aborted" } : {}),
      };
      instruments.httpDuration.record(Number(process.hrtime.bigint() - started) / 1e9, attributes);
      if (route) span.updateName(`${method} ${route}`);
      span.setAttributes(attributes);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: locals.errorCode });
      span.end();
      recordOutcome(recorder, method, route, res);
    };
    res.once("finish", end);
    res.once("close", end);
    context.with(trace.setSpan(parent, span), next);
  };
}

function recordOutcome(recorder: Recorder, method: string, route: string | undefined, res: Response): void {
  const locals = res.locals as HttpLocals;
  if (res.statusCode === 429) recorder.rateLimited(locals.rateLimitClass ?? FLOW_LIMIT_CLASSES[route ?? ""] ?? "other", "http");
  if (res.statusCode === 503 && locals.busyCause !== undefined) recorder.databaseBusy(locals.busyCause, "http");
  if (method === "POST" && route === SEND_ROUTE) {
    if (res.statusCode === 201 || res.statusCode === 200) recorder.send("http", { stored: res.statusCode === 201 });
    else if (locals.errorCode) recorder.send("http", { errorCode: locals.errorCode });
  }
}
