import type { RequestHandler, Response } from "express";
import { errors } from "../shared/errors";
import type { SessionStore } from "./sessions";
import { extractBearer, type AccessClaims, type AccessTokens } from "./tokens";

/**
 * Requires a valid access token whose session is still active. The caller's identity is then
 * available through `caller(res)`; it is the only source of "who is asking" in every route.
 */
export function requireAuth(tokens: AccessTokens, sessions: SessionStore): RequestHandler {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (!header || !/^Bearer\s+/i.test(header)) throw errors.unauthorized("Missing bearer token");
    const token = extractBearer(header);
    if (!token) throw errors.unauthorized("Missing bearer token");
    const claims = tokens.verify(token);
    if (!(await sessions.isActive(claims.sessionId, claims.userId))) {
      throw errors.unauthorized("Session has ended; log in again");
    }
    res.locals.auth = claims;
    next();
  };
}

export function caller(res: Response): AccessClaims {
  const claims = res.locals.auth as AccessClaims | undefined;
  if (!claims) throw errors.unauthorized();
  return claims;
}
