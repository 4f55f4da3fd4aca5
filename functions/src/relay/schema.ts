import { z } from "zod";
import { errorEnvelopeSchema, errorSchema, isoTime, succeeded } from "../shared/responses";
import { idOf } from "../shared/validation";
import { messageRecordSchema } from "../messages/schema";

/**
 * The payloads of the relay's Socket.IO events. The relay validates what clients send with the first
 * group; the second describes what it emits. reference/socket-events.ts documents both, in the OpenAPI
 * document's `x-socket-events`, and the typed client's event maps are generated from there.
 */

// Client → server.
export const authenticateSchema = z.object({
  token: z.string().describe("The access token; the `Bearer ` prefix is optional"),
});
export const joinRoomSchema = z.object({ userId: z.string() });
export const messageAckSchema = z.object({ messageId: idOf("msg") });
export const typingSchema = z.object({ contactId: idOf("user") });

// Server → client.
/** The envelope's inner object: what the `error` event carries. */
export const socketErrorSchema = errorSchema;

export const authenticatedSchema = z.object({ userId: idOf("user") });
export const authErrorSchema = errorSchema;

export const messageDeliveredSchema = z.object({
  messageId: idOf("msg"),
  receiverId: idOf("user"),
  deliveredAt: isoTime(),
});

export const presenceEventSchema = z.object({
  userId: idOf("user"),
  status: z.enum(["online", "offline"]),
  lastSeen: isoTime(),
});

export const typingIndicatorSchema = z.object({
  fromUserId: idOf("user"),
  toUserId: idOf("user"),
  isTyping: z.boolean(),
});

export { messageRecordSchema };

// Acknowledgements (the Socket.IO ack callback's argument).
/** Every refused event with an ack callback: `{ success: false, error }`, like the REST envelope. */
export const failedAckSchema = errorEnvelopeSchema;
export const okAckSchema = succeeded({});
export const joinRoomAckSchema = succeeded({ userId: idOf("user") });
export const sendMessageAckSchema = succeeded({ message: messageRecordSchema });
