import type { Server, Socket } from "socket.io";
import { z } from "zod";
import { deviceLinkApprovedEventSchema, deviceLinkRejectedEventSchema, deviceLinkRequestEventSchema } from "../devices/schema";
import { keyExchangeRequestEventSchema, keyExchangeResponseEventSchema } from "../keyexchange/schema";
import { errorEnvelopeSchema, errorSchema, isoTime, succeeded } from "../shared/responses";
import { idOf } from "../shared/validation";
import { messageRecordSchema, sendMessageSchema } from "../messages/schema";

/**
 * The relay's Socket.IO events, declared once: the payload schemas, then one table of the events (name,
 * payload, ack, description), from which both the relay's typed event maps below and the OpenAPI
 * document's `x-socket-events` (reference/openapi.ts; the typed client's maps are generated from there)
 * are made. The relay validates what clients send with the client → server payload schemas.
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

export const messageSentSchema = z.object({
  message: messageRecordSchema.describe("The full record, as the sending device's own answer had it"),
});

export const messageExpiredSchema = z.object({
  messageId: idOf("msg"),
  receiverId: idOf("user"),
  delivered: z.literal(false).describe("Always false: the receiver never acknowledged the message before it expired"),
});

export const presenceEventSchema = z.object({
  userId: idOf("user"),
  status: z.enum(["online", "offline"]),
  lastSeen: isoTime(),
});

export const fileDeletedSchema = z.object({
  fileId: idOf("file"),
  reason: z
    .enum(["downloaded", "expired"])
    .describe("`downloaded`: the receiver's first complete download of a `deleteAfterDownload` file; `expired`: its `expiresAt` passed"),
});

export const keyChangedSchema = z.object({
  userId: idOf("user"),
  publicKey: z.string().describe("The user's new identity key (PEM SPKI), as the key-transparency log binds it"),
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

// The table of events.
export interface ClientEvent {
  description: string;
  payload: z.ZodType;
  /** What the server passes to the Socket.IO ack callback, if the client gives one. */
  ack?: z.ZodType;
}

export interface ServerEvent {
  description: string;
  payload: z.ZodType;
  /** The client acknowledges with the Socket.IO ack callback (no arguments); see the description. */
  clientAcks?: true;
}

export const CLIENT_EVENTS = {
  authenticate: {
    description:
      "Authenticate after connecting (or pass `auth: { token }` in the handshake instead). Answered by `authenticated` or `auth_error`. Before authentication every other event is refused with UNAUTHORIZED, and a socket not authenticated within 10 s is disconnected. A socket has one user: authenticating again as the same user is answered `authenticated`, as anyone else `auth_error` FORBIDDEN and a disconnect.",
    payload: authenticateSchema,
  },
  join_room: {
    description:
      "An acknowledgement: the socket is in its own room from authentication on (the room is how the relay finds a user's sockets). Any other user id is refused with FORBIDDEN, and the socket stays out of that room.",
    payload: joinRoomSchema,
    ack: joinRoomAckSchema,
  },
  send_message: {
    description:
      "Send a message: the same body, validation, sequencing, replay and rate rules as POST /messages/send. A retry (a nonce already used with the same content) is acknowledged with the stored message and `duplicate: true`, and not delivered again. A receiver who blocks the sender: BLOCKED.",
    payload: sendMessageSchema,
    ack: sendMessageAckSchema,
  },
  message_ack: {
    description: "Acknowledge a delivered message (the alternative to the `message_received` ack callback).",
    payload: messageAckSchema,
    ack: okAckSchema,
  },
  typing_start: {
    description: "Tell a contact you are typing: FORBIDDEN unless you have them as a contact; acknowledged but dropped (not delivered) unless they have you as a contact too and neither of you blocks the other; RATE_LIMITED past 10 in a burst, then 2 per second.",
    payload: typingSchema,
    ack: okAckSchema,
  },
  typing_stop: {
    description: "Tell a contact you stopped typing (same rules as typing_start).",
    payload: typingSchema,
    ack: okAckSchema,
  },
} satisfies Record<string, ClientEvent>;

export const SERVER_EVENTS = {
  authenticated: { description: "The socket is authenticated and in the user's room.", payload: authenticatedSchema },
  auth_error: {
    description: "Authentication failed, the session ended (logout, logout-all, a password change elsewhere) or the 10 s deadline passed; the server disconnects.",
    payload: authErrorSchema,
  },
  error: { description: "A refused event that had no ack callback.", payload: socketErrorSchema },
  message_received: {
    description:
      "A message for this user, once to each of the receiver's devices that existed when it was stored (or, if the receiver had none, to the next to connect); missed ones first on (re)connection, oldest first. Each device acknowledges for itself with the ack callback (or `message_ack`): unacknowledged, it comes again on that device's next connection only; acknowledged, never again to that device, while the others still get it.",
    payload: messageRecordSchema,
    clientAcks: true,
  },
  message_delivered: {
    description: "To the sender, when the first of the receiver's devices acknowledges (once per message, whatever the number of devices).",
    payload: messageDeliveredSchema,
  },
  message_sent: {
    description:
      "To the sender's other connected devices (not the one that sent it), for each message stored from one of their sibling devices, by POST /messages/send or `send_message`; not for a retry (`duplicate`). Not durable: a device connected later reads it in history.",
    payload: messageSentSchema,
  },
  message_expired: {
    description:
      "To the sender, when a disappearing message (sent with `expiresInSeconds`) reached its `expiresAt` before its receiver acknowledged it; it is deleted and will never be delivered. At once if the sender is connected (within the expiry sweep's 15 s), else on their next connection; once per socket. Acknowledge with the ack callback: acknowledged, it never comes again; unacknowledged, it comes again on the next connection.",
    payload: messageExpiredSchema,
    clientAcks: true,
  },
  key_exchange_request: {
    description: "To the target of a key exchange, at once or when they next connect. Acknowledge with the ack callback.",
    payload: keyExchangeRequestEventSchema,
    clientAcks: true,
  },
  key_exchange_response: {
    description: "To the initiator, when the target responded. Acknowledge with the ack callback.",
    payload: keyExchangeResponseEventSchema,
    clientAcks: true,
  },
  user_online: { description: "A mutual contact (each has the other as a contact, neither blocks the other) came online.", payload: presenceEventSchema },
  user_offline: { description: "A mutual contact went offline.", payload: presenceEventSchema },
  typing_indicator: { description: "A mutual contact is typing to you (or stopped).", payload: typingIndicatorSchema },
  key_changed: {
    description:
      "To every contact of a user (users they added and users who added them) when that user replaced their identity key (POST /users/key). Durable: at once if connected, else on the next connection, until acknowledged with the ack callback. Before trusting the new key, verify it in the key-transparency log (GET /transparency/proof/{userId}) and tell the person their contact's key changed.",
    payload: keyChangedSchema,
    clientAcks: true,
  },
  file_deleted: {
    description:
      "To the uploader of a file, when it was deleted after the receiver's complete download or at its expiry (the uploader's own delete sends none). Once per file, to the sockets connected then; both parties get 410 FILE_GONE for it from then on.",
    payload: fileDeletedSchema,
  },
  device_link_request: {
    description:
      "To the account's other connected devices when a new device asks to be linked (POST /devices/link-requests): show it, compare the code both devices display, then approve or reject. Not sent again; GET /devices/link-requests lists the pending ones.",
    payload: deviceLinkRequestEventSchema,
  },
  device_link_approved: {
    description:
      "To the device that asked only: the approver's ephemeral key, signature and the encrypted payload. At once if connected, else on its next connection, until acknowledged with the ack callback; the server then deletes the payload.",
    payload: deviceLinkApprovedEventSchema,
    clientAcks: true,
  },
  device_link_rejected: {
    description: "To the device that asked only, when another device rejected its link request. Durable until acknowledged, like `device_link_approved`.",
    payload: deviceLinkRejectedEventSchema,
    clientAcks: true,
  },
} satisfies Record<string, ServerEvent>;

// The event maps of the relay's Socket.IO server, from the table. What a client sends is untrusted until
// parsed, so client payloads are `unknown` here.
type Payload<Schema extends z.ZodType> = z.output<Schema>;
type AckWith<Schema extends z.ZodType> = (response: Payload<Schema> | Payload<typeof failedAckSchema>) => void;
type ClientEvents = typeof CLIENT_EVENTS;
type ServerEvents = typeof SERVER_EVENTS;

export type ClientToServerEvents = {
  [Event in keyof ClientEvents]: ClientEvents[Event] extends { ack: infer Ack extends z.ZodType }
    ? (payload: unknown, ack?: AckWith<Ack>) => void
    : (payload: unknown) => void;
};

export type ServerToClientEvents = {
  [Event in keyof ServerEvents]: ServerEvents[Event] extends { clientAcks: true }
    ? (payload: Payload<ServerEvents[Event]["payload"]>, ack: () => void) => void
    : (payload: Payload<ServerEvents[Event]["payload"]>) => void;
};

/** What the relay keeps on each socket (`socket.data`). */
export interface SocketData {
  userId?: string;
  sessionId?: string;
}

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
/** Any ack callback a client passed (its response type depends on the event). */
export type AnyAck = ((response: never) => void) | undefined;
