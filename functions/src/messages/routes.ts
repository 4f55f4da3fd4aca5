import type { SessionStore } from "../auth/sessions";
import { caller } from "../shared/caller";
import { deviceIdOf } from "../shared/ids";
import type { Clock } from "../shared/clock";
import { operationOf, RATE_LIMIT_HEADERS, type OperationGroup } from "../shared/operations";
import { rateLimitHeaders } from "../shared/rate-limit";
import { conversationPage } from "./history";
import type { MessageRepository } from "./repository";
import {
  checkContentSize,
  historyParamsSchema,
  historyQuerySchema,
  historyResponseSchema,
  sendMessageDuplicateResponseSchema,
  sendMessageResponseSchema,
  sendMessageSchema,
} from "./schema";
import type { MessageSender } from "./send";

interface MessageRouteDeps {
  sender: MessageSender;
  messages: MessageRepository;
  sessions: SessionStore;
  clock: Clock;
}

const operation = operationOf<MessageRouteDeps>();

export const messageOperations: OperationGroup<MessageRouteDeps> = {
  prefix: "/messages",
  tag: "Messages",
  operations: [
    operation({
      operationId: "sendMessage",
      method: "post",
      path: "/send",
      summary: "Send an encrypted message",
      description:
        "Checked in this order, and nothing is stored on any refusal: shape (400); a retry (a nonce this sender used within the last 15 minutes, with every other field equal to the message stored under it) answers 200 with that message's original answer plus `duplicate: true`, storing nothing and taking no rate; clock (`timestamp` within 5 minutes back and 60 s ahead, else 400 STALE_TIMESTAMP); receiver exists (404); the receiver does not block the caller (403 BLOCKED); rate per pair (429); nonce unused by this sender (409 REPLAY_DETECTED); `sequenceNumber` an integer from 1 to 2^31-1 and at most 1000 greater than the pair's last (else 400 VALIDATION_ERROR with `details.lastSequenceNumber`) and greater than the last (else 409 REPLAY_DETECTED with `details.lastSequenceNumber`); absent, the server assigns last + 1. `encryptedContent` over 98,304 characters is 413. With `expiresInSeconds` (an integer from 5 to 2,592,000) the message disappears at `expiresAt` (server time + that many seconds, in the record): from then on it is in no history, `total` or backlog and is never delivered, and it is deleted; if its receiver had not acknowledged it by then, the sender gets `message_expired`.",
      // The session is read in the same transaction that stores the message: one round trip fewer on the
      // hottest path, and a message is never stored for a session that has ended. The pair's rate is
      // taken in that transaction too (messages/repository.ts).
      auth: "token",
      checkBody: checkContentSize,
      body: sendMessageSchema,
      success: { status: 201, description: "Stored", schema: sendMessageResponseSchema, headers: RATE_LIMIT_HEADERS },
      alsoSucceeds: {
        status: 200,
        description: "A retry of a message already stored: its original answer, plus `duplicate: true`; nothing stored",
        schema: sendMessageDuplicateResponseSchema,
        component: "SendMessageDuplicateResponse",
      },
      errors: ["STALE_TIMESTAMP", "NOT_FOUND", "BLOCKED", "REPLAY_DETECTED", "RATE_LIMITED"],
      handle: async ({ body, res }, { sender, sessions }) => {
        const { userId, sessionId } = caller(res);
        const { record, rateLimit, duplicate } = await sender.send(userId, body, sessions.guard(sessionId, userId), deviceIdOf(sessionId));
        // A retry took no token from the pair's bucket, so it has no rate to report.
        if (rateLimit) res.set(rateLimitHeaders(rateLimit));
        // Answered here, as its status depends on the outcome.
        res.status(duplicate ? 200 : 201).json({
          success: true,
          messageId: record.id,
          timestamp: record.timestamp,
          sequenceNumber: record.sequenceNumber,
          message: record,
          ...(duplicate ? { duplicate: true } : {}),
        });
      },
    }),
    operation({
      operationId: "getHistory",
      method: "get",
      path: "/{contactId}",
      summary: "The conversation with a contact, a page at a time",
      description:
        "Pages go newest first; within a page messages are in ascending time. `before` is a message id (the oldest of the page you have); `offset` skips that many newer messages and scans what it skips (prefer `before`). Expired disappearing messages are in no page and not in `total`; pages stay full around them. A `before` message that has expired and been deleted is 404 NOT_FOUND.",
      auth: "session",
      params: historyParamsSchema,
      query: historyQuerySchema,
      success: { status: 200, description: "One page", schema: historyResponseSchema },
      errors: ["NOT_FOUND"],
      handle: ({ params, query, res }, { messages, clock }) => conversationPage(messages, clock.now(), caller(res).userId, params.contactId, query),
    }),
  ],
};
