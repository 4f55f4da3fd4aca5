import { createHash } from "node:crypto";
import type { Request, RequestHandler, Response } from "express";
import { Timestamp, type Firestore } from "firebase-admin/firestore";
import { addressBucket } from "./address-bucket";
import { caller } from "./caller";
import type { Clock } from "./clock";
import { COLLECTIONS } from "./firestore";
import { errors, type AppError } from "./errors";
import { KeyedQueue } from "./keyed-queue";

/**
 * Token buckets: a bucket holds up to `limit` tokens and refills `limit` tokens per `windowSeconds`.
 * FirestoreRateLimiter keeps them in Firestore, so a limit holds across every instance;
 * MemoryRateLimiter keeps them in the process, for limits that need not. README "Rate limits" lists
 * every endpoint class, its limit and where its buckets live.
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

/** Anything that decides, per bucket key, whether one more request fits the policy. */
export interface RateLimiter {
  consume(bucketKey: string, policy: RateLimitPolicy): Promise<RateLimitDecision>;
}

/** A bucket's state: tokens left at a moment. */
export interface BucketState {
  tokens: number;
  updatedAtMs: number;
}

/** Refills the bucket up to `nowMs`, takes one token if there is one, and says what that means. */
export function takeToken(stored: BucketState | undefined, nowMs: number, policy: RateLimitPolicy) {
  const refillPerMs = policy.limit / (policy.windowSeconds * 1000);
  const elapsed = stored ? Math.max(0, nowMs - stored.updatedAtMs) : 0;
  const available = stored ? Math.min(policy.limit, stored.tokens + elapsed * refillPerMs) : policy.limit;
  const allowed = available >= 1;
  const tokens = allowed ? available - 1 : available;
  const msUntilFull = (policy.limit - tokens) / refillPerMs;
  const decision: RateLimitDecision = {
    allowed,
    limit: policy.limit,
    remaining: Math.floor(tokens),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / refillPerMs / 1000)),
    resetSeconds: Math.ceil(msUntilFull / 1000),
  };
  return { state: { tokens, updatedAtMs: nowMs }, msUntilFull, decision };
}

/**
 * Buckets in Firestore (rateLimits/{sha256(key)}), shared by every instance. Within an instance, the
 * requests of one bucket take their turn: a burst from one address would otherwise only contend for
 * the same document (the transaction still keeps instances honest with each other).
 */
export class FirestoreRateLimiter implements RateLimiter {
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly db: Firestore,
    private readonly clock: Clock,
  ) {}

  async consume(bucketKey: string, policy: RateLimitPolicy): Promise<RateLimitDecision> {
    // Bucket keys contain emails and addresses: hash them so they are neither stored nor path-unsafe.
    const docId = createHash("sha256").update(bucketKey).digest("hex");
    const ref = this.db.collection(COLLECTIONS.rateLimits).doc(docId);

    return this.queue.run(docId, () =>
      this.db.runTransaction(async (tx) => {
        const nowMs = this.clock.now().getTime();
        const snapshot = await tx.get(ref);
        const { state, msUntilFull, decision } = takeToken(snapshot.data() as BucketState | undefined, nowMs, policy);
        tx.set(ref, { ...state, expiresAt: Timestamp.fromMillis(nowMs + msUntilFull + 60_000) });
        return decision;
      }),
    );
  }
}

/** Buckets a process keeps before it forgets the full ones (and, if still over, the oldest). */
const MEMORY_BUCKETS_MAX = 50_000;

/**
 * Token buckets in this process's memory, for limits that need not hold across instances: a ceiling
 * that only has to keep one instance from being flooded, or state that lives and dies with a socket.
 * Same bucket arithmetic as FirestoreRateLimiter.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, BucketState & { fullAtMs: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxBuckets = MEMORY_BUCKETS_MAX,
  ) {}

  async consume(bucketKey: string, policy: RateLimitPolicy): Promise<RateLimitDecision> {
    return this.consumeNow(bucketKey, policy);
  }

  /** The synchronous form, for callers on a hot path (socket events). */
  consumeNow(bucketKey: string, policy: RateLimitPolicy): RateLimitDecision {
    const nowMs = this.clock.now().getTime();
    const { state, msUntilFull, decision } = takeToken(this.buckets.get(bucketKey), nowMs, policy);
    this.buckets.delete(bucketKey); // re-inserted last: the map stays in order of last use
    this.buckets.set(bucketKey, { ...state, fullAtMs: nowMs + msUntilFull });
    if (this.buckets.size > this.maxBuckets) this.evict(nowMs);
    return decision;
  }

  /** Drops a bucket (its socket is gone). */
  forget(bucketKey: string): void {
    this.buckets.delete(bucketKey);
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Makes room for a tenth of the maximum at once, so a flood of new keys does not sweep on every call. */
  private evict(nowMs: number): void {
    const target = Math.floor(this.maxBuckets * 0.9);
    // A full bucket is the same as no bucket: forgetting those changes no decision.
    for (const [key, bucket] of this.buckets) if (bucket.fullAtMs <= nowMs) this.buckets.delete(key);
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(key);
    }
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

/** RATE_LIMITED (429 with Retry-After and RateLimit-*) for a decision that refuses. */
export function rateLimited(decision: RateLimitDecision): AppError {
  return errors.rateLimited(decision.retryAfterSeconds, rateLimitHeaders(decision));
}

/** Throws RATE_LIMITED when the decision refuses. */
export function enforce(decision: RateLimitDecision): void {
  if (!decision.allowed) throw rateLimited(decision);
}

/** Names the bucket a request counts against; undefined lets the request through uncounted. */
export type BucketKeyOf = (req: Request, res: Response) => string | undefined;

/**
 * Counts each request against `policy` in the bucket `keyOf` names: over the limit it is refused with
 * 429 RATE_LIMITED (Retry-After, RateLimit-*); within it, the RateLimit-* headers say what is left.
 */
export function rateLimit(limiter: RateLimiter, policy: RateLimitPolicy, keyOf: BucketKeyOf): RequestHandler {
  return async (req, res, next) => {
    const key = keyOf(req, res);
    if (key === undefined) return next();
    const decision = await limiter.consume(key, policy);
    res.set(rateLimitHeaders(decision));
    enforce(decision);
    next();
  };
}

/**
 * One bucket for every caller of a class together: a ceiling on the whole service. It refuses like
 * rateLimit, but leaves the RateLimit-* headers of an allowed request to the caller's own bucket.
 */
export function sharedCeiling(limiter: RateLimiter, policy: RateLimitPolicy, bucketKey: string): RequestHandler {
  return async (_req, _res, next) => {
    enforce(await limiter.consume(bucketKey, policy));
    next();
  };
}

/**
 * One bucket per client address, an IPv6 client's whole /64 counting as one (addressBucket). Express
 * resolves X-Forwarded-For only across the trusted proxy hops.
 */
export const byClientAddress =
  (endpointClass: string): BucketKeyOf =>
  (req) =>
    `${endpointClass}:ip:${addressBucket(req.ip ?? "unknown")}`;

/** One bucket per authenticated caller: mount behind requireAuth. */
export const byCaller =
  (endpointClass: string): BucketKeyOf =>
  (_req, res) =>
    `${endpointClass}:user:${caller(res).userId}`;
