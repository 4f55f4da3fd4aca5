/**
 * The one table of error codes the API answers with, and the typed error that carries them.
 * Every failure reaches the client as the contract's envelope:
 *   { "success": false, "error": { "code", "message", "details"? } }
 */

export const ERROR_CODES = {
  VALIDATION_ERROR: 400,
  STALE_TIMESTAMP: 400,
  INVALID_SIGNATURE: 400,
  UNAUTHORIZED: 401,
  TOKEN_EXPIRED: 401,
  FORBIDDEN: 403,
  BLOCKED: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  EMAIL_TAKEN: 409,
  USERNAME_TAKEN: 409,
  ALREADY_EXISTS: 409,
  REPLAY_DETECTED: 409,
  LIMIT_EXCEEDED: 409,
  TOO_MANY_DEVICES: 409,
  EXCHANGE_NOT_PENDING: 409,
  LINK_REQUEST_NOT_PENDING: 409,
  EXCHANGE_EXPIRED: 410,
  LINK_REQUEST_EXPIRED: 410,
  FILE_GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  QUOTA_EXCEEDED: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  field?: string;
  [key: string]: unknown;
}

export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetails,
    /** Extra response headers, e.g. Retry-After for RATE_LIMITED. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AppError";
    this.status = ERROR_CODES[code];
  }
}

export interface ErrorEnvelope {
  success: false;
  error: { code: ErrorCode; message: string; details?: ErrorDetails };
}

export function toEnvelope(error: AppError): ErrorEnvelope {
  const body: ErrorEnvelope["error"] = { code: error.code, message: error.message };
  if (error.details !== undefined) body.details = error.details;
  return { success: false, error: body };
}

/** Named factories for the errors raised in more than one place. */
export const errors = {
  validation: (field: string, message: string) => new AppError("VALIDATION_ERROR", message, { field }),
  unauthorized: (message = "Authentication required") => new AppError("UNAUTHORIZED", message),
  tokenExpired: () => new AppError("TOKEN_EXPIRED", "Access token has expired"),
  forbidden: (message = "Not allowed") => new AppError("FORBIDDEN", message),
  blocked: () => new AppError("BLOCKED", "This user has blocked you"),
  notFound: (what = "Resource") => new AppError("NOT_FOUND", `${what} not found`),
  /** To its two parties, a file deleted after its download or at its expiry (anyone else: notFound). */
  fileGone: () => new AppError("FILE_GONE", "This file has been deleted (downloaded or expired)"),
  /** The receiver of a message or a file does not exist. */
  receiverNotFound: () => new AppError("NOT_FOUND", "Receiver not found", { field: "receiverId" }),
  /** Also what anyone but the two participants hears of an exchange that exists. */
  exchangeNotFound: () => new AppError("NOT_FOUND", "Key exchange not found", { field: "exchangeId" }),
  /** The caller's session was revoked or expired: a new login is the only way on. */
  sessionEnded: () => new AppError("UNAUTHORIZED", "Session has ended; log in again"),
  bodyTooLarge: () => new AppError("PAYLOAD_TOO_LARGE", "Request body is too large"),
  internal: () => new AppError("INTERNAL_ERROR", "Internal server error"),
  rateLimited: (retryAfterSeconds: number, headers: Record<string, string> = {}) =>
    new AppError(
      "RATE_LIMITED",
      "Too many requests, try again later",
      { retryAfterSeconds },
      { "Retry-After": String(retryAfterSeconds), ...headers },
    ),
};
