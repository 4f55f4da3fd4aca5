import { AppError, errors } from "../shared/errors";
import type { SessionStore } from "./sessions";
import { extractBearer, type AccessClaims, type AccessTokens } from "./tokens";

/**
 * The one authentication of the API and the relay. A raw token (an Authorization header, or a socket's
 * `auth.token` or `authenticate` payload; "Bearer " optional) is either an authenticated session or a
 * named refusal carrying the error to answer with. Each edge answers its own way: HTTP throws the
 * error, the relay sends it as `auth_error`.
 */
export type Refusal = "missing_token" | "invalid_token" | "expired_token" | "session_ended";

export type Authentication = { ok: true; session: AccessClaims } | { ok: false; refusal: Refusal; error: AppError };

export type Authenticate = (rawToken: unknown) => Promise<Authentication>;

const refused = (refusal: Refusal, error: AppError): Authentication => ({ ok: false, refusal, error });

/**
 * The token alone (signature, algorithm, issuer, audience, expiry): for operations that check the
 * session inside their own transaction (SessionGuard). Everything else authenticates.
 */
export function verifyToken(tokens: AccessTokens, rawToken: unknown): Authentication {
  const token = extractBearer(rawToken);
  if (!token) return refused("missing_token", errors.unauthorized("Missing token"));
  try {
    return { ok: true, session: tokens.verify(token) };
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return refused(error.code === "TOKEN_EXPIRED" ? "expired_token" : "invalid_token", error);
  }
}

/** The token, then its session read now, so a logout counts at once. */
export function createAuthenticator(tokens: AccessTokens, sessions: Pick<SessionStore, "isActive">): Authenticate {
  return async (rawToken) => {
    const verified = verifyToken(tokens, rawToken);
    if (!verified.ok) return verified;
    const { sessionId, userId } = verified.session;
    if (!(await sessions.isActive(sessionId, userId))) return refused("session_ended", errors.sessionEnded());
    return verified;
  };
}
