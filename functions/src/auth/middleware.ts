import type { Request, RequestHandler, Response } from "express";
import { setCaller } from "../shared/caller";
import { errors } from "../shared/errors";
import { verifyToken, type Authenticate, type Authentication } from "./authenticate";
import type { AccessTokens } from "./tokens";

export { caller } from "../shared/caller";

/**
 * Requires a valid access token and nothing more: for routes that check the session inside their own
 * transaction (see SessionGuard). The caller's identity is then available through `caller(res)`.
 */
export function requireToken(tokens: AccessTokens): RequestHandler {
  return (req, res, next) => {
    admit(res, verifyToken(tokens, bearerHeader(req)));
    next();
  };
}

/** Requires a valid access token whose session is still active: the app's one `authenticate` (authenticate.ts), the relay's too. */
export function requireAuth(authenticate: Authenticate): RequestHandler {
  return async (req, res, next) => {
    admit(res, await authenticate(bearerHeader(req)));
    next();
  };
}

/** The Authorization header, only with the Bearer scheme (a socket may send a bare token; HTTP may not). */
function bearerHeader(req: Request): string | undefined {
  const header = req.headers.authorization;
  return header && /^Bearer\s+/i.test(header) ? header : undefined;
}

/** Records the caller, or refuses; over HTTP a missing token is named after its header. */
function admit(res: Response, authentication: Authentication): void {
  if (!authentication.ok) {
    throw authentication.refusal === "missing_token" ? errors.unauthorized("Missing bearer token") : authentication.error;
  }
  setCaller(res, authentication.session);
}
