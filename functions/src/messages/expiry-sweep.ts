import { randomBytes } from "node:crypto";
import type { Clock } from "../shared/clock";
import type { Logger } from "../shared/logger";
import { repeatEvery } from "../shared/periodic";
import type { UserEventPublisher } from "../shared/user-events";
import type { ExpiryNotice, MessageRepository } from "./repository";

/**
 * How the expiry of a disappearing message is noticed: a sweep, run every MESSAGE_EXPIRY_SWEEP_MS by
 * every relay instance (the local stack's included) and every minute by the scheduled function
 * `expireMessages` in production (functions/src/index.ts).
 *
 * Why a sweep, and not only the other two ways:
 * - A check at read time cannot tell a sender who is online and reads nothing: the notice must reach
 *   them "at once". The read paths do filter by time (expiry.ts), so what a client sees is exact to the
 *   millisecond whatever the sweep's lag; only the notice and the deletion wait for it.
 * - The TTL policy's deletion can lag by a day, and its trigger (a function on each deletion) would
 *   inherit that lag; the TTL policy is kept as the backstop that deletes what the sweep leaves
 *   (delivered messages, in production).
 * So the bound: a sender connected at `expiresAt` gets `message_expired` within one sweep interval
 * (15 s on the relay, locally as in production; at most a minute through the scheduled function when no
 * relay runs) plus the event's way to the socket; a sender offline gets it on their next connection.
 *
 * One sweep: the ids of undelivered messages past expiresAt, then for each batch one transaction that
 * deletes them and writes their notices (MessageRepository.expire): with several sweepers, only the
 * transaction that commits first does it, so a message is deleted and noticed once. The notices are
 * published to the senders' sockets after the commit; a publish that fails loses nothing, since the
 * notice stays stored until the sender acknowledges it and is read on every connection.
 */
export const MESSAGE_EXPIRY_SWEEP_MS = 15_000;
/** Messages per transaction (each reads the message and its notice, and writes at most two documents). */
const BATCH_SIZE = 50;
/** Batches per run: a backlog larger than this is finished by the next runs. */
const MAX_BATCHES_PER_RUN = 20;

export interface ExpirySweepReport {
  /** Messages deleted that their receiver never acknowledged: one notice each. */
  expiredUndelivered: number;
  /** Delivered messages past expiresAt deleted by the sweep (only with `purgeDelivered`). */
  purgedDelivered: number;
}

export interface ExpirySweepOptions {
  /**
   * Also delete delivered messages past expiresAt. For the emulator (local stack, tests), which runs no
   * TTL policy; production leaves them to the TTL policy on messages.expiresAt.
   */
  purgeDelivered: boolean;
}

export class MessageExpirySweep {
  constructor(
    private readonly messages: MessageRepository,
    private readonly events: UserEventPublisher,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: ExpirySweepOptions,
  ) {}

  async run(): Promise<ExpirySweepReport> {
    const undelivered = await this.sweep((now) => this.messages.expiredUndeliveredIds(now, BATCH_SIZE));
    const purged = this.options.purgeDelivered ? await this.sweep((now) => this.messages.expiredIds(now, BATCH_SIZE)) : { deleted: 0, notified: 0 };
    // An acknowledgement that failed after the first pass read the ids may leave one for the purge to notice.
    const report = { expiredUndelivered: undelivered.notified + purged.notified, purgedDelivered: purged.deleted - purged.notified };
    if (undelivered.deleted + purged.deleted > 0) this.logger.info("message expiry sweep done", { ...report });
    return report;
  }

  private async sweep(find: (now: Date) => Promise<string[]>): Promise<{ deleted: number; notified: number }> {
    const total = { deleted: 0, notified: 0 };
    for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
      const now = this.clock.now();
      const ids = await find(now);
      // Minted outside the transaction, so a retried attempt recognises what it wrote (repository.ts).
      const { deleted, notices } = await this.messages.expire(ids, now, randomBytes(12).toString("base64url"));
      await this.publish(notices);
      total.deleted += deleted;
      total.notified += notices.length;
      if (ids.length < BATCH_SIZE) break;
    }
    return total;
  }

  private async publish(notices: ExpiryNotice[]): Promise<void> {
    await Promise.all(
      notices.map((notice) =>
        this.events.publish(notice.senderId, "message_expired", messageExpiredEvent(notice)).catch((error: Error) =>
          // Stored: the sender gets it on their next connection.
          this.logger.warn("message_expired publish failed", { userId: notice.senderId, messageId: notice.messageId, error }),
        ),
      ),
    );
  }
}

/** The `message_expired` event's payload (relay/schema.ts messageExpiredSchema). */
export function messageExpiredEvent(notice: Pick<ExpiryNotice, "messageId" | "receiverId">) {
  return { messageId: notice.messageId, receiverId: notice.receiverId, delivered: false as const };
}

/** Runs the sweep every `intervalMs` (the relay's and the local stack's stand-in for the scheduled function, and a faster one). */
export function runExpirySweepEvery(sweep: MessageExpirySweep, intervalMs: number, logger: Logger): { stop(): Promise<void> } {
  return repeatEvery(
    intervalMs,
    () => sweep.run(),
    (error) => logger.warn("message expiry sweep failed", { error: { name: error.name, message: error.message } }),
  );
}
