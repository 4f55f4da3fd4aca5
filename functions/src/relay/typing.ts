import { AppError, errors } from "../shared/errors";
import type { UserRepository } from "../users/repository";

/**
 * Typing indicators go only to someone related by contact (either direction), and at most a burst of
 * TYPING_BURST then TYPING_PER_SECOND per socket. Per process is enough here: abuse costs one socket's
 * worth of writes, and the socket can be dropped.
 */
const TYPING_BURST = 10;
const TYPING_PER_SECOND = 2;
const RELATION_CACHE_MS = 60_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class TypingLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly relations = new Map<string, { related: boolean; at: number }>();

  constructor(private readonly users: UserRepository) {}

  async check(socketId: string, fromUserId: string, toUserId: string): Promise<void> {
    const now = Date.now();
    const bucket = this.buckets.get(socketId) ?? { tokens: TYPING_BURST, at: now };
    bucket.tokens = Math.min(TYPING_BURST, bucket.tokens + ((now - bucket.at) / 1000) * TYPING_PER_SECOND);
    bucket.at = now;
    this.buckets.set(socketId, bucket);
    if (bucket.tokens < 1) throw errors.rateLimited(Math.ceil((1 - bucket.tokens) / TYPING_PER_SECOND));
    bucket.tokens -= 1;

    const key = `${fromUserId}>${toUserId}`;
    let relation = this.relations.get(key);
    if (!relation || now - relation.at > RELATION_CACHE_MS) {
      relation = { related: await this.users.areRelated(fromUserId, toUserId), at: now };
      this.relations.set(key, relation);
      if (this.relations.size > 10_000) this.relations.delete(this.relations.keys().next().value!);
    }
    if (!relation.related) throw new AppError("FORBIDDEN", "Typing indicators go only to your contacts", { field: "contactId" });
  }

  forget(socketId: string): void {
    this.buckets.delete(socketId);
  }
}
