import type { RequestHandler } from "express";
import { caller, setCaller } from "../shared/caller";
import { errors } from "../shared/errors";
import type { SessionStore } from "./sessions";
import { extractBearer, type AccessTokens } from "./tokens";

export { caller } from "../shared/caller";

/**
 * Requires a valid access token (signature, algorithm, issuer, audience, expiry) and nothing more:
 * for routes that check the session inside their own transaction (see SessionGuard). The caller's
 * identity is then available through `caller(res)`; it is the only source of "who is asking".
 */
export function requireToken(tokens: AccessTokens): RequestHandler {
  return (req, res, next) => {
    const header = req.headers.authorization;
    if (!header || !/^Bearer\s+/i.test(header)) throw errors.unauthorized("Missing bearer token");
    const token = extractBearer(header);
    if (!token) throw errors.unauthorized("Missing bearer token");
    setCaller(res, tokens.verify(token));
    next();
  };
}

/** Requires a valid access token whose session is still active (read now, so logout counts at once). */
export function requireAuth(tokens: AccessTokens, sessions: SessionStore): RequestHandler {
  const tokenOnly = requireToken(tokens);
  return async (req, res, next) => {
    tokenOnly(req, res, () => undefined);
    const claims = caller(res);
    if (!(await sessions.isActive(claims.sessionId, claims.userId))) {
      throw errors.unauthorized("Session has ended; log in again");
    }
    next();
  };
}
