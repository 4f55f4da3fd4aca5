import { randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import type { AppConfig } from "../config";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";

/**
 * Short-lived access tokens: HS256 only (pinned, so `alg: none` and algorithm confusion are refused),
 * with issuer, audience, expiry (required: a token without `exp` is refused), the user as `sub` and the
 * session as `sid`. The session is checked against Firestore on every request, so logout takes effect
 * at once.
 */
const ALGORITHM = "HS256";

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface AccessTokens {
  issue(claims: AccessClaims): { token: string; expiresIn: number };
  verify(token: string): AccessClaims;
}

export function createAccessTokens(jwtConfig: AppConfig["jwt"], clock: Clock): AccessTokens {
  return {
    issue({ userId, sessionId }) {
      const iat = Math.floor(clock.now().getTime() / 1000);
      const token = jwt.sign({ sid: sessionId, iat }, jwtConfig.secret, {
        algorithm: ALGORITHM,
        expiresIn: jwtConfig.accessTokenTtlSeconds,
        issuer: jwtConfig.issuer,
        audience: jwtConfig.audience,
        subject: userId,
        // Unique per token, so a refresh within the same second never hands back an identical token.
        jwtid: randomBytes(9).toString("base64url"),
      });
      return { token, expiresIn: jwtConfig.accessTokenTtlSeconds };
    },

    verify(token) {
      let payload: string | jwt.JwtPayload;
      try {
        payload = jwt.verify(token, jwtConfig.secret, {
          algorithms: [ALGORITHM],
          issuer: jwtConfig.issuer,
          audience: jwtConfig.audience,
          clockTimestamp: Math.floor(clock.now().getTime() / 1000),
        });
      } catch (error) {
        if (error instanceof jwt.TokenExpiredError) throw errors.tokenExpired();
        throw errors.unauthorized("Invalid access token");
      }
      // jsonwebtoken accepts a token without `exp` as never expiring: refuse it, whoever signed it.
      if (
        typeof payload === "string" ||
        typeof payload.sub !== "string" ||
        typeof payload.sid !== "string" ||
        typeof payload.exp !== "number"
      ) {
        throw errors.unauthorized("Invalid access token");
      }
      return { userId: payload.sub, sessionId: payload.sid };
    },
  };
}

/** Accepts "Bearer <token>" (the prefix optional, as the socket `authenticate` event allows). */
export function extractBearer(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const token = value.replace(/^Bearer\s+/i, "").trim();
  return token.length > 0 && token.length <= 4096 ? token : undefined;
}
