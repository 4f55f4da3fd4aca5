import { createHash } from "node:crypto";
import { Timestamp, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "./clock";
import { COLLECTIONS } from "./firestore";
import { errors } from "./errors";

/**
 * Token buckets kept in Firestore, so a limit holds across every instance of the function.
 * A bucket holds up to `limit` tokens and refills `limit` tokens per `windowSeconds`.
 */
export interface RateLimitPolicy {
  limit: number;
  windowSeconds: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until a token is available again (0 when allowed). */
  retryAfterSeconds: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
}

export class FirestoreRateLimiter {
  constructor(
    private readonly db: Firestore,
    private readonly clock: Clock,
  ) {}

  async consume(bucketKey: string, policy: RateLimitPolicy): Promise<RateLimitDecision> {
    // Bucket keys contain emails and addresses: hash them so they are neither stored nor path-unsafe.
    const docId = createHash("sha256").update(bucketKey).digest("hex");
    const ref = this.db.collection(COLLECTIONS.rateLimits).doc(docId);
    const refillPerMs = policy.limit / (policy.windowSeconds * 1000);

    return this.db.runTransaction(async (tx) => {
      const nowMs = this.clock.now().getTime();
      const snapshot = await tx.get(ref);
      const stored = snapshot.data() as { tokens: number; updatedAtMs: number } | undefined;
      const elapsed = stored ? Math.max(0, nowMs - stored.updatedAtMs) : 0;
      const available = stored ? Math.min(policy.limit, stored.tokens + elapsed * refillPerMs) : policy.limit;
      const allowed = available >= 1;
      const tokens = allowed ? available - 1 : available;
      const msUntilFull = (policy.limit - tokens) / refillPerMs;
      tx.set(ref, {
        tokens,
        updatedAtMs: nowMs,
        expiresAt: Timestamp.fromMillis(nowMs + msUntilFull + 60_000),
      });
      return {
        allowed,
        limit: policy.limit,
        remaining: Math.floor(tokens),
        retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / refillPerMs / 1000)),
        resetSeconds: Math.ceil(msUntilFull / 1000),
      };
    });
  }
}

/** The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers) for a decision. */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  return {
    "RateLimit-Limit": String(decision.limit),
    "RateLimit-Remaining": String(decision.remaining),
    "RateLimit-Reset": String(decision.resetSeconds),
  };
}

/** Throws RATE_LIMITED (429 with Retry-After and RateLimit-*) when the decision refuses. */
export function enforce(decision: RateLimitDecision): void {
  if (!decision.allowed) throw errors.rateLimited(decision.retryAfterSeconds, rateLimitHeaders(decision));
}
