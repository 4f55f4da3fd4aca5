import { AsyncResource } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";
import { knownCaller } from "./caller";
import { AppError, errors, toEnvelope } from "./errors";
import { FIRESTORE_CODES, firestoreCodeOf } from "./firestore";
import type { Logger } from "./logger";

/** What the domain needs to know about the caller's connection (throttling, audit). */
export interface RequestContext {
  ip: string;
}

export function requestContext(req: Request): RequestContext {
  return { ip: req.ip ?? "unknown" };
}

/**
 * One structured line per request: method, route, status, duration. Never the body, the query string
 * or headers: they carry tokens, passwords and ciphertext.
 */
export function requestLogger(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    res.locals.requestId = requestId;
    // The router restores req.baseUrl when an error leaves a sub-router, so "baseUrl + route.path" read at
    // "finish" would say "/login" for a failed login. Take the full pattern when the route is matched.
    let matchedRoute: string | undefined;
    let route: unknown;
    Object.defineProperty(req, "route", {
      configurable: true,
      enumerable: true,
      get: () => route,
      set: (value: { path?: unknown } | undefined) => {
        route = value;
        if (typeof value?.path === "string") res.locals.route = matchedRoute = req.baseUrl + value.path;
      },
    });
    res.setHeader("X-Request-Id", requestId);
    // Bound to the request's async context, so the line carries its trace (telemetry/tracing.ts).
    res.on("finish", AsyncResource.bind(() => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const fields = {
        requestId,
        method: req.method,
        route: matchedRoute ?? "",
        status: res.statusCode,
        durationMs: Math.round(durationMs * 10) / 10,
        userId: knownCaller(res)?.userId,
      };
      if (res.statusCode >= 500) logger.error("request failed", fields);
      else logger.info("request", fields);
    }));
    next();
  };
}

/** POST/PUT/PATCH bodies on JSON routes must be JSON: anything else is 415, not a confusing 400. */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
  if (["POST", "PUT", "PATCH"].includes(req.method) && hasBody && !req.is("application/json")) {
    next(new AppError("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"));
    return;
  }
  next();
};

/**
 * On Cloud Functions the platform has read and parsed the body before the app runs (up to its own 32 MB
 * cap), so express.json finds it parsed and never applies its limit: apply the same limit to the bytes
 * that arrived. Elsewhere there is no req.rawBody and express.json enforces the limit itself.
 */
export function limitPreparsedBody(limitBytes: number): RequestHandler {
  return (req, _res, next) => {
    const rawBody = (req as Request & { rawBody?: unknown }).rawBody;
    if (Buffer.isBuffer(rawBody) && rawBody.length > limitBytes) {
      next(errors.bodyTooLarge());
      return;
    }
    next();
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new AppError("NOT_FOUND", `No route for ${req.method} ${req.path}`));
};

interface BodyParserError extends Error {
  type?: string;
  status?: number;
}

/** Errors from express.json() and friends, mapped to the contract's codes. */
function fromBodyParser(error: BodyParserError): AppError | undefined {
  switch (error.type) {
    case "entity.parse.failed":
      return errors.validation("body", "Request body is not valid JSON");
    case "entity.too.large":
      return errors.bodyTooLarge();
    case "encoding.unsupported":
    case "charset.unsupported":
      return new AppError("UNSUPPORTED_MEDIA_TYPE", "Unsupported content encoding or charset");
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
      return errors.validation("body", "Request body could not be read");
    default:
      return undefined;
  }
}

/**
 * Other client errors Express itself raises: a path parameter that is not valid percent-encoding (the
 * router's URIError, status 400) and body-parser's http-errors marked `expose` (a compressed body that does
 * not inflate). They are the client's fault, never 500. Errors from Google clients also carry a `status`,
 * but neither of these marks, so they still become 500.
 */
function fromClientError(error: BodyParserError & { expose?: boolean }): AppError | undefined {
  if (error instanceof URIError && error.status === 400) {
    return errors.validation("path", "Request path is not valid percent-encoding");
  }
  const status = error.status;
  if (error.expose !== true || typeof status !== "number" || status < 400 || status > 499) return undefined;
  if (status === 413) return errors.bodyTooLarge();
  if (status === 415) return new AppError("UNSUPPORTED_MEDIA_TYPE", "Unsupported content type or encoding");
  return errors.validation("body", "Request body could not be read");
}

/**
 * gRPC status codes with which Firestore says "busy, try again" (ABORTED after the SDK's own retries
 * of a contended transaction, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE): nothing was
 * written, so the client may retry. Answered 503 with Retry-After, not 500.
 */
const RETRYABLE_FIRESTORE_CODES = new Set<number>([
  FIRESTORE_CODES.ABORTED,
  FIRESTORE_CODES.DEADLINE_EXCEEDED,
  FIRESTORE_CODES.RESOURCE_EXHAUSTED,
  FIRESTORE_CODES.UNAVAILABLE,
]);

export function busyDatabaseError(error: unknown): AppError | undefined {
  const code = firestoreCodeOf(error);
  if (code === undefined || !RETRYABLE_FIRESTORE_CODES.has(code)) return undefined;
  return new AppError("SERVICE_UNAVAILABLE", "The database is busy; retry shortly", { grpcCode: code }, { "Retry-After": "1" });
}

/** The answer for work that outlived the deadline: the database (or something behind it) is not answering. */
export function deadlineError(deadlineMs: number): AppError {
  return new AppError("SERVICE_UNAVAILABLE", "The database did not answer in time; retry shortly", { deadlineSeconds: deadlineMs / 1000 }, { "Retry-After": "1" });
}

/**
 * A request not answered within `deadlineMs` gets 503 with Retry-After, whatever it waits on (a
 * transaction's own retries can outlast the per-call deadline). The handler's late answer is dropped.
 */
export function requestDeadline(deadlineMs: number): RequestHandler {
  return (_req, res, next) => {
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      res.locals.deadlineExpired = true;
      const error = deadlineError(deadlineMs);
      res.locals.busyCause = error;
      res.locals.errorCode = error.code;
      res.set(error.headers).status(error.status).json(toEnvelope(error));
    }, deadlineMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    res.once("finish", clear);
    res.once("close", clear);
    next();
  };
}

/** Rejects with the deadline's 503 if `work` has not settled by then (the socket's counterpart of requestDeadline). */
export function withDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(deadlineError(deadlineMs)), deadlineMs);
    timer.unref();
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** The one place where errors become the envelope. Unknown errors are logged and answered as 500. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // The deadline answered already; the handler's late answer (or failure) has nowhere to go.
    if (res.locals.deadlineExpired) return;
    let appError: AppError;
    if (error instanceof AppError) {
      appError = error;
    } else {
      const mapped =
        error instanceof Error ? (fromBodyParser(error as BodyParserError) ?? fromClientError(error as BodyParserError)) : undefined;
      const busy = mapped ? undefined : busyDatabaseError(error);
      if (busy) {
        res.locals.busyCause = error;
        logger.warn("database busy", { requestId: res.locals.requestId, error: (error as Error).message });
      }
      if (mapped ?? busy) {
        appError = (mapped ?? busy)!;
      } else {
        logger.error("unhandled error", {
          requestId: res.locals.requestId,
          error: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error),
        });
        appError = errors.internal();
      }
    }
    res.locals.errorCode = appError.code;
    if (res.headersSent) {
      res.end();
      return;
    }
    res.set(appError.headers);
    res.status(appError.status).json(toEnvelope(appError));
  };
}
