import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { enforce, MemoryRateLimiter, type RateLimitPolicy } from "../shared/rate-limit";
import { parseInput } from "../shared/validation";
import type { UserRepository } from "../users/repository";
import type { UserEvents } from "./events";
import { typingSchema } from "./schema";

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

/** typing_start / typing_stop: checked, then published to the contact's sockets wherever they are. */
export function createTyping(users: UserRepository, events: UserEvents, policy: RateLimitPolicy, clock: Clock) {
  const limiter = new TypingLimiter(users, policy, clock);
  return {
    async indicate(socketId: string, fromUserId: string, payload: unknown, isTyping: boolean): Promise<void> {
      const { contactId } = parseInput(typingSchema, payload);
      await limiter.check(socketId, fromUserId, contactId);
      await events.publish(contactId, "typing_indicator", { fromUserId, toUserId: contactId, isTyping });
    },
    forget(socketId: string): void {
      limiter.forget(socketId);
    },
  };
}
