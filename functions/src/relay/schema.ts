import type { Server, Socket } from "socket.io";
import { z } from "zod";
import { keyExchangeRequestEventSchema, keyExchangeResponseEventSchema } from "../keyexchange/schema";
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

// Acknowledgements (the Socket.IO ack callback's argument).
/** Every refused event with an ack callback: `{ success: false, error }`, like the REST envelope. */
export const failedAckSchema = errorEnvelopeSchema;
export const okAckSchema = succeeded({});
export const joinRoomAckSchema = succeeded({ userId: idOf("user") });
export const sendMessageAckSchema = succeeded({
  message: messageRecordSchema,
  duplicate: z
    .literal(true)
    .optional()
    .describe("Present when the send repeated one already stored (same nonce and content): `message` is that one, nothing new was stored"),
});

// The event maps of the relay's Socket.IO server, from the schemas above (the typed client's maps,
// client/src/generated.ts, are generated from the same schemas through reference/socket-events.ts).
// What a client sends is untrusted until parsed, so client payloads are `unknown` here.
type Payload<Schema extends z.ZodType> = z.output<Schema>;
type AckWith<Schema extends z.ZodType> = (response: Payload<Schema> | Payload<typeof failedAckSchema>) => void;

export interface ServerToClientEvents {
  authenticated: (payload: Payload<typeof authenticatedSchema>) => void;
  auth_error: (payload: Payload<typeof authErrorSchema>) => void;
  error: (payload: Payload<typeof socketErrorSchema>) => void;
  message_received: (payload: Payload<typeof messageRecordSchema>, ack: () => void) => void;
  message_delivered: (payload: Payload<typeof messageDeliveredSchema>) => void;
  key_exchange_request: (payload: Payload<typeof keyExchangeRequestEventSchema>, ack: () => void) => void;
  key_exchange_response: (payload: Payload<typeof keyExchangeResponseEventSchema>, ack: () => void) => void;
  user_online: (payload: Payload<typeof presenceEventSchema>) => void;
  user_offline: (payload: Payload<typeof presenceEventSchema>) => void;
  typing_indicator: (payload: Payload<typeof typingIndicatorSchema>) => void;
}

export interface ClientToServerEvents {
  authenticate: (payload: unknown) => void;
  join_room: (payload: unknown, ack?: AckWith<typeof joinRoomAckSchema>) => void;
  send_message: (payload: unknown, ack?: AckWith<typeof sendMessageAckSchema>) => void;
  message_ack: (payload: unknown, ack?: AckWith<typeof okAckSchema>) => void;
  typing_start: (payload: unknown, ack?: AckWith<typeof okAckSchema>) => void;
  typing_stop: (payload: unknown, ack?: AckWith<typeof okAckSchema>) => void;
}

/** What the relay keeps on each socket (`socket.data`). */
export interface SocketData {
  userId?: string;
  sessionId?: string;
}

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
/** Any ack callback a client passed (its response type depends on the event). */
export type AnyAck = ((response: never) => void) | undefined;
