import type { DeviceService } from "../devices/service";
import type { KeyExchangeService } from "../keyexchange/service";
import type { MessageRepository } from "../messages/repository";
import type { Clock } from "../shared/clock";
import type { UserEvents } from "./events";

/**
 * Acknowledgements and receipts. The first acknowledgement of a message (by any socket of its receiver,
 * on any instance) marks it delivered and sends the sender one `message_delivered`; later ones change
 * nothing. Key-exchange notices are marked delivered the same way, without a receipt; an acknowledged
 * `message_expired` notice is deleted (only its sender's acknowledgement counts), and so is an acknowledged
 * device-link answer's payload (only the requester device's acknowledgement counts).
 */
export function createAcknowledgements(
  messages: MessageRepository,
  keyExchanges: KeyExchangeService,
  events: UserEvents,
  clock: Clock,
  devices: Pick<DeviceService, "acknowledge">,
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

    keyExchange(userId: string, exchangeId: string, what: "request" | "response"): Promise<void> {
      return keyExchanges.acknowledge(userId, exchangeId, what);
    },

    /** The device that asked to be linked has its answer: the payload is deleted (devices/link-request.ts). */
    deviceLink(userId: string, deviceId: string, requestId: string): Promise<void> {
      return devices.acknowledge(userId, deviceId, requestId);
    },
  };
}

export type Acknowledgements = ReturnType<typeof createAcknowledgements>;
