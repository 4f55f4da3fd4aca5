import type { z } from "zod";
import { keyExchangeRequestEventSchema, keyExchangeResponseEventSchema } from "../keyexchange/schema";
import { messageRecordSchema, sendMessageSchema } from "../messages/schema";
import {
  authenticatedSchema,
  authenticateSchema,
  authErrorSchema,
  joinRoomAckSchema,
  joinRoomSchema,
  messageAckSchema,
  messageDeliveredSchema,
  okAckSchema,
  presenceEventSchema,
  sendMessageAckSchema,
  socketErrorSchema,
  typingIndicatorSchema,
  typingSchema,
} from "../relay/schema";

/**
 * The relay's Socket.IO events (relay/relay.ts and the files it wires), with the zod schemas of their payloads
 * (relay/schema.ts and the capabilities' schema.ts). Published as the OpenAPI document's `x-socket-events`.
 */

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

export const CLIENT_EVENTS: Record<string, ClientEvent> = {
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
};

export const SERVER_EVENTS: Record<string, ServerEvent> = {
  authenticated: { description: "The socket is authenticated and in the user's room.", payload: authenticatedSchema },
  auth_error: {
    description: "Authentication failed, the session ended (logout, logout-all, a password change elsewhere) or the 10 s deadline passed; the server disconnects.",
    payload: authErrorSchema,
  },
  error: { description: "A refused event that had no ack callback.", payload: socketErrorSchema },
  message_received: {
    description:
      "A message for this user, once per socket; missed ones first on (re)connection, oldest first. Acknowledge with the ack callback (or `message_ack`): unacknowledged, it comes again on the next connection.",
    payload: messageRecordSchema,
    clientAcks: true,
  },
  message_delivered: { description: "To the sender, when the receiver first acknowledges.", payload: messageDeliveredSchema },
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
};
