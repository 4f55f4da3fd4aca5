import type { KeyExchangeService } from "../keyexchange/service";
import type { MessageRepository } from "../messages/repository";
import type { Clock } from "../shared/clock";
import type { KeyChangeNotices } from "../users/key-notices";
import type { UserEvents } from "./events";

/**
 * Acknowledgements and receipts. The first acknowledgement of a message (by any socket of its receiver,
 * on any instance) marks it delivered and sends the sender one `message_delivered`; later ones change
 * nothing. Key-exchange notices are marked delivered the same way, without a receipt; an acknowledged
 * `message_expired` notice is deleted (only its sender's acknowledgement counts), and so is a
 * `key_changed` notice (only its recipient's).
 */
export function createAcknowledgements(
  messages: MessageRepository,
  keyExchanges: KeyExchangeService,
  keyNotices: KeyChangeNotices,
  events: UserEvents,
  clock: Clock,
) {
  return {
    async message(receiverId: string, messageId: string): Promise<void> {
      const delivered = await messages.markDelivered(receiverId, messageId, clock.now());
      if (!delivered) return;
      // The receipt only matters to a sender who is connected now, so it is sent after the commit.
      await events.publish(delivered.senderId, "message_delivered", {
        messageId,
        receiverId,
        deliveredAt: delivered.deliveredAt.toISOString(),
      });
    },

    async messageExpired(senderId: string, messageId: string): Promise<void> {
      await messages.acknowledgeExpiryNotice(senderId, messageId);
    },

    /** Only the recipient's own acknowledgement of the newest key deletes the notice. */
    keyChanged(recipientId: string, userId: string, publicKey: string): Promise<void> {
      return keyNotices.acknowledge(recipientId, userId, publicKey);
    },

    keyExchange(userId: string, exchangeId: string, what: "request" | "response"): Promise<void> {
      return keyExchanges.acknowledge(userId, exchangeId, what);
    },
  };
}

export type Acknowledgements = ReturnType<typeof createAcknowledgements>;
