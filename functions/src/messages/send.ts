import type { SessionGuard } from "../auth/sessions";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { newId } from "../shared/ids";
import { KeyedQueue } from "../shared/keyed-queue";
import type { Logger } from "../shared/logger";
import type { UserEventPublisher } from "../shared/user-events";
import { toMessageRecord } from "./presenters";
import { pairIdOf, type MessageDraft } from "./record";
import type { AppendResult, MessageRepository } from "./repository";
import type { SendMessageInput } from "./schema";
import { clientClockOf, decideLateSend, timestampAhead, type SendRatePolicy } from "./send-decision";

/**
 * The one send flow, shared by REST and the realtime relay: check the clock window, then store the
 * message, its pair counter and its nonce in one transaction (the rules: send-decision.ts). Sends of one
 * pair are serialized in this process (they would only contend for the counter); other instances are
 * kept honest by the transaction itself.
 *
 * A retry (the same nonce and content as a message already stored, see retry.ts) is answered with
 * that message and `duplicate: true`, for as long as the nonce is remembered (NONCE_RETENTION_MS):
 * even once its client timestamp has left the clock window, since a client whose answer was lost must
 * still learn its message id. Only the sender can retry (it is their nonce), and nothing is stored.
 *
 * A stored message is also told to the sender's other connected devices (`message_sent`, CONTRACT.md
 * "Devices"), after the commit: not durable (their history has it), so a failed publish fails nothing.
 */
export class MessageSender {
  private readonly pairQueue = new KeyedQueue();

  constructor(
    private readonly messages: MessageRepository,
    private readonly clock: Clock,
    private readonly rate: SendRatePolicy,
    private readonly events: UserEventPublisher,
    private readonly logger: Logger,
  ) {}

  /**
   * `session`, when given, is checked inside the storing transaction (see SessionGuard). `fromDevice`,
   * the sending device, is left out of `message_sent`.
   */
  async send(senderId: string, input: SendMessageInput, session?: SessionGuard, fromDevice?: string): Promise<AppendResult> {
    const result = await this.store(senderId, input, session);
    // A sender with no socket anywhere has no other device to tell (the store read its presence).
    if (!result.duplicate && result.senderConnected) await this.tellOtherDevices(senderId, result, fromDevice);
    return result;
  }

  private async tellOtherDevices(senderId: string, { record }: AppendResult, fromDevice: string | undefined): Promise<void> {
    try {
      await this.events.publish(senderId, "message_sent", { message: record }, fromDevice ? { exceptDevice: fromDevice } : undefined);
    } catch (error) {
      this.logger.warn("message_sent publish failed", { userId: senderId, messageId: record.id, error: error as Error });
    }
  }

  private async store(senderId: string, input: SendMessageInput, session?: SessionGuard): Promise<AppendResult> {
    if (input.receiverId === senderId) {
      throw errors.validation("receiverId", "receiverId: you cannot send a message to yourself");
    }
    const draft: MessageDraft = { messageId: newId("msg"), senderId, sent: input };
    const clientClock = clientClockOf(draft, this.clock.now());
    if (clientClock === "ahead") throw timestampAhead();
    if (clientClock === "behind") return this.answerLateRetry(draft, session);
    return this.pairQueue.run(pairIdOf(senderId, input.receiverId), () =>
      this.messages.append(draft, { now: () => this.clock.now(), rate: this.rate }, session),
    );
  }

  /** Too old to be stored: only a retry of a message already stored is answered. */
  private async answerLateRetry(draft: MessageDraft, session?: SessionGuard): Promise<AppendResult> {
    const decision = decideLateSend(await this.messages.lateSendState(draft, session), draft, this.clock.now());
    if (decision.kind === "refused") throw decision.error;
    return { record: toMessageRecord(decision.messageId, decision.message), duplicate: true };
  }
}
