import type { DeviceService } from "../devices/service";
import type { KeyExchangeService } from "../keyexchange/service";
import type { MessageRepository } from "../messages/repository";
import type { Clock } from "../shared/clock";
import { noTelemetry, type Telemetry } from "../telemetry/telemetry";
import type { KeyChangeNotices } from "../users/key-notices";
import type { UserEvents } from "./events";

/**
 * Acknowledgements and receipts. Each of the receiver's devices acknowledges a message for itself (it
 * leaves that device's backlog); the first device's acknowledgement (on any instance) also marks it
 * delivered and sends the sender one `message_delivered`; later ones send nothing. Key-exchange notices are acknowledged per device the same way, without a receipt; an acknowledged
 * `message_expired` notice is deleted (only its sender's acknowledgement counts), so is an acknowledged
 * device-link answer's payload (only the requester device's acknowledgement counts), and a `key_changed`
 * notice (only its recipient's: one device's acknowledgement counts for the account).
 */
export function createAcknowledgements(
  messages: MessageRepository,
  keyExchanges: KeyExchangeService,
  keyNotices: KeyChangeNotices,
  events: UserEvents,
  clock: Clock,
  devices: Pick<DeviceService, "acknowledge">,
  telemetry: Pick<Telemetry, "delivered"> = noTelemetry,
) {
  return {
    async message(receiverId: string, deviceId: string, messageId: string): Promise<void> {
      const delivered = await messages.markDelivered(receiverId, deviceId, messageId, clock.now());
      if (!delivered?.first) return;
      telemetry.delivered(delivered.sentAt, delivered.deliveredAt); // the first acknowledgement only
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

        keyExchange(userId: string, deviceId: string, exchangeId: string, what: "request" | "response"): Promise<void> {
      return keyExchanges.acknowledge(userId, deviceId, exchangeId, what);
    },

    /** The device that asked to be linked has its answer: the payload is deleted (devices/link-request.ts). */
    deviceLink(userId: string, deviceId: string, requestId: string): Promise<void> {
      return devices.acknowledge(userId, deviceId, requestId);
    },
  };
}

export type Acknowledgements = ReturnType<typeof createAcknowledgements>;
