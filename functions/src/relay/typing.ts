import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { arePresencePeers, canIndicateTypingTo } from "../shared/policies";
import { enforce, MemoryRateLimiter, type RateLimitPolicy } from "../shared/rate-limit";
import { parseInput } from "../shared/validation";
import type { UserRepository } from "../users/repository";
import type { UserEvents } from "./events";
import { typingSchema } from "./schema";

/**
 * Typing indicators flow only between presence peers: mutual contacts with no block either way (the
 * rule presence follows, shared/policies.ts). Typing to someone not in your own contacts
 * is refused with FORBIDDEN (the answer depends only on your own list); typing to a contact who has
 * not added you back, or when either of you blocks the other, is acknowledged and dropped, so the
 * answer never tells what the other side's contacts or blocks are.
 *
 * The relation is read on every indicator, not cached, so a block or a removed contact takes effect at
 * once; at most `policy` per socket (TYPING_LIMIT per TYPING_WINDOW_SECONDS: a burst of 10, then 2 a
 * second by default) bounds those reads. Per process is enough here: abuse costs one socket's worth of
 * writes, and the socket can be dropped.
 */
export class TypingLimiter {
  private readonly buckets: MemoryRateLimiter;

  constructor(
    private readonly users: UserRepository,
    private readonly policy: RateLimitPolicy,
    clock: Clock,
  ) {
    this.buckets = new MemoryRateLimiter(clock);
  }

  /** Throws when the indicator is refused; false when it is to be dropped silently. */
  async check(socketId: string, fromUserId: string, toUserId: string): Promise<boolean> {
    enforce(this.buckets.consumeNow(socketId, this.policy));
    const facts = await this.users.presenceFacts(fromUserId, toUserId);
    if (!canIndicateTypingTo(facts)) throw new AppError("FORBIDDEN", "Typing indicators go only to your contacts", { field: "contactId" });
    return arePresencePeers(facts);
  }

  forget(socketId: string): void {
    this.buckets.forget(socketId);
  }
}

/** typing_start / typing_stop: checked, then published to the contact's sockets wherever they are (or dropped). */
export function createTyping(users: UserRepository, events: UserEvents, policy: RateLimitPolicy, clock: Clock) {
  const limiter = new TypingLimiter(users, policy, clock);
  return {
    async indicate(socketId: string, fromUserId: string, payload: unknown, isTyping: boolean): Promise<void> {
      const { contactId } = parseInput(typingSchema, payload);
      if (!(await limiter.check(socketId, fromUserId, contactId))) return;
      await events.publish(contactId, "typing_indicator", { fromUserId, toUserId: contactId, isTyping });
    },
    forget(socketId: string): void {
      limiter.forget(socketId);
    },
  };
}
