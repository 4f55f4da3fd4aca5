import type { SessionGuard } from "../auth/sessions";
import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import { newId } from "../shared/ids";
import { KeyedQueue } from "../shared/keyed-queue";
import { pairIdOf } from "./record";
import type { AppendResult, MessageRepository, SendRatePolicy } from "./repository";
import type { SendMessageInput } from "./schema";

/** The contract's window for a client timestamp: at most 5 minutes old, at most 60 s ahead. */
export const MAX_CLIENT_TIMESTAMP_AGE_MS = 5 * 60 * 1000;
export const MAX_CLIENT_TIMESTAMP_LEAD_MS = 60 * 1000;

/**
 * The one send flow, shared by REST and the realtime relay: check the clock window, then store the
 * message, its pair counter and its nonce in one transaction. Sends of one pair are serialized in this
 * process (they would only contend for the counter); other instances are kept honest by the
 * transaction itself.
 *
 * A retry (the same nonce and content as a message already stored, see retry.ts) is answered with
 * that message and `duplicate: true`, for as long as the nonce is remembered (NONCE_RETENTION_MS):
 * even once its client timestamp has left the clock window, since a client whose answer was lost must
 * still learn its message id. Only the sender can retry (it is their nonce), and nothing is stored.
 */
export class MessageSender {
  private readonly pairQueue = new KeyedQueue();

  constructor(
    private readonly messages: MessageRepository,
    private readonly clock: Clock,
    private readonly rate: SendRatePolicy,
  ) {}

  /** `session`, when given, is checked inside the storing transaction (see SessionGuard). */
  async send(senderId: string, input: SendMessageInput, session?: SessionGuard): Promise<AppendResult> {
    if (input.receiverId === senderId) {
      throw errors.validation("receiverId", "receiverId: you cannot send a message to yourself");
    }
    const draft = {
      messageId: newId("msg"),
      senderId,
      receiverId: input.receiverId,
      encryptedContent: input.encryptedContent,
      iv: input.iv,
      authTag: input.authTag,
      nonce: input.nonce,
      signature: input.signature,
      messageType: input.messageType,
      clientTimestamp: input.timestamp,
      requestedSequence: input.sequenceNumber,
    };
    const skew = this.clock.now().getTime() - Date.parse(input.timestamp);
    if (skew < -MAX_CLIENT_TIMESTAMP_LEAD_MS) {
      throw new AppError("STALE_TIMESTAMP", "timestamp is more than 60 seconds in the future", { field: "timestamp" });
    }
    if (skew > MAX_CLIENT_TIMESTAMP_AGE_MS) {
      // Too old to be stored: only a retry of a message already stored is answered.
      const original = await this.messages.findRetry(draft, this.clock.now(), session);
      if (original) return { record: original, duplicate: true };
      throw new AppError("STALE_TIMESTAMP", "timestamp is more than 5 minutes old", { field: "timestamp" });
    }
    return this.pairQueue.run(pairIdOf(senderId, input.receiverId), () =>
      this.messages.append(draft, () => this.clock.now(), this.rate, session),
    );
  }
}
