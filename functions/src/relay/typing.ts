import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { enforce, MemoryRateLimiter, type RateLimitPolicy } from "../shared/rate-limit";
import type { UserRepository } from "../users/repository";

/**
 * Typing indicators go only to someone related by contact (either direction), and at most `policy`
 * per socket (TYPING_LIMIT per TYPING_WINDOW_SECONDS: a burst of 10, then 2 a second by default).
 * Per process is enough here: abuse costs one socket's worth of writes, and the socket can be dropped.
 */
const RELATION_CACHE_MS = 60_000;

export class TypingLimiter {
  private readonly buckets: MemoryRateLimiter;
  private readonly relations = new Map<string, { related: boolean; at: number }>();

  constructor(
    private readonly users: UserRepository,
    private readonly policy: RateLimitPolicy,
    clock: Clock,
  ) {
    this.buckets = new MemoryRateLimiter(clock);
  }

  async check(socketId: string, fromUserId: string, toUserId: string): Promise<void> {
    enforce(this.buckets.consumeNow(socketId, this.policy));
    const now = Date.now();

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
    this.buckets.forget(socketId);
  }
}
