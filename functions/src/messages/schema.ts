import { z } from "zod";
import { AppError } from "../shared/errors";
import { isoTime, succeeded } from "../shared/responses";
import { BASE64_TEXT, base64Text, idOf, queryCount, text } from "../shared/validation";
import { MAX_EXPIRES_IN_SECONDS, MIN_EXPIRES_IN_SECONDS } from "./expiry";
import { MAX_SEQUENCE_JUMP, MAX_SEQUENCE_NUMBER } from "./sequence";

/** Signal's per-message limit: 96 KiB of ciphertext (as the base64 text the client sends). */
export const MAX_ENCRYPTED_CONTENT_LENGTH = 96 * 1024;
export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 100;
export const HISTORY_MAX_OFFSET = 1000;

// ISO 8601 with a time and an explicit zone, as Date#toISOString produces (offsets accepted too).
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

export const sendMessageSchema = z.object({
  receiverId: idOf("user"),
  // Checked separately so that too-long ciphertext is a 413, not a 400 (see checkContentSize).
  encryptedContent: text()
    .min(1, "is required")
    .regex(BASE64_TEXT, "must be base64 text")
    .describe(`Base64 ciphertext, at most ${MAX_ENCRYPTED_CONTENT_LENGTH} characters (413 PAYLOAD_TOO_LARGE beyond)`),
  iv: base64Text(64),
  authTag: base64Text(64),
  nonce: base64Text(128),
  signature: base64Text(1024),
  timestamp: text()
    .max(40, "must be an ISO 8601 time")
    .regex(ISO_8601, "must be an ISO 8601 time")
    .refine((value) => !Number.isNaN(Date.parse(value)), "must be an ISO 8601 time")
    .describe("The sender's clock, ISO 8601 with a zone: at most 5 minutes old and 60 s ahead (else 400 STALE_TIMESTAMP)"),
  messageType: text()
    .regex(/^[a-z][a-z0-9_]{0,19}$/, "must be 1-20 lower-case letters, digits or underscores")
    .default("text"),
  // Only the type here: the bounds depend on the pair's last number, so they are checked where it is
  // read (sequence.ts), and every refusal for range names it in details.lastSequenceNumber.
  sequenceNumber: z
    .number({ error: "must be a number" })
    .refine(Number.isInteger, "must be an integer")
    .meta({ type: "integer", minimum: 1, maximum: MAX_SEQUENCE_NUMBER })
    .optional()
    .describe(
      `Greater than the pair's last (else 409 REPLAY_DETECTED) and at most ${MAX_SEQUENCE_JUMP} greater (else 400 VALIDATION_ERROR with details.lastSequenceNumber), stored as sent; absent, the server assigns last + 1`,
    ),
  expiresInSeconds: z
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(MIN_EXPIRES_IN_SECONDS, `must be at least ${MIN_EXPIRES_IN_SECONDS}`)
    .max(MAX_EXPIRES_IN_SECONDS, `must be at most ${MAX_EXPIRES_IN_SECONDS}`)
    .optional()
    .describe(
      "A disappearing message: from server time + this many seconds (the record's `expiresAt`) it is in no history, count or backlog and is never delivered, and it is deleted; if it expired before its receiver acknowledged it, the sender gets `message_expired`. Part of the content a retry must repeat",
    ),
});
export type SendMessageInput = z.infer<typeof sendMessageSchema>;

/** Runs before the schema, on the raw body, so that oversize ciphertext answers 413 as the issue asks. */
export function checkContentSize(body: unknown): void {
  const content = (body as { encryptedContent?: unknown } | null)?.encryptedContent;
  if (typeof content === "string" && content.length > MAX_ENCRYPTED_CONTENT_LENGTH) {
    throw new AppError(
      "PAYLOAD_TOO_LARGE",
      `encryptedContent must be at most ${MAX_ENCRYPTED_CONTENT_LENGTH} characters`,
      { field: "encryptedContent" },
    );
  }
}

export const historyParamsSchema = z.object({ contactId: idOf("user") });

export const historyQuerySchema = z.object({
  limit: queryCount(HISTORY_MAX_LIMIT, HISTORY_DEFAULT_LIMIT),
  offset: queryCount(HISTORY_MAX_OFFSET, 0, 0),
  before: idOf("msg").optional(),
});
export type HistoryQuery = z.infer<typeof historyQuerySchema>;

// Responses.
/** A message as stored and as every client sees it: in the send answer, in history, in socket events. */
export const messageRecordSchema = z.object({
  id: idOf("msg").describe("Server-minted; the client deduplicates by it"),
  messageId: idOf("msg").describe("The same value as `id` (the guide's socket examples call it messageId)"),
  senderId: idOf("user").describe("Always the authenticated sender"),
  receiverId: idOf("user"),
  encryptedContent: z.string().describe("Exactly as sent: never decoded, re-encoded or trimmed"),
  iv: z.string().describe("Exactly as sent"),
  authTag: z.string().describe("Exactly as sent"),
  nonce: z.string().describe("Exactly as sent; unique per sender"),
  signature: z.string().describe("Exactly as sent"),
  messageType: z.string(),
  sequenceNumber: z.number().int().min(1).describe("Per ordered pair (sender → receiver)"),
  timestamp: isoTime().describe("Server time of storage"),
  clientTimestamp: z.string().describe("The sender's `timestamp`, byte for byte"),
  expiresAt: isoTime()
    .optional()
    .describe("Only on a disappearing message (sent with `expiresInSeconds`): `timestamp` + that many seconds. From then on the message is gone"),
});

export const sendMessageResponseSchema = succeeded({
  messageId: idOf("msg"),
  timestamp: isoTime(),
  sequenceNumber: z.number().int().min(1),
  message: messageRecordSchema,
});

/** A retry's answer (200): exactly the original send's body, plus `duplicate: true`. */
export const sendMessageDuplicateResponseSchema = sendMessageResponseSchema.extend({
  duplicate: z.literal(true).describe("This send repeated one already stored (same nonce and content): nothing new was stored"),
});

export const historyResponseSchema = succeeded({
  messages: z.array(messageRecordSchema).describe("One page, in ascending time"),
  hasMore: z.boolean().describe("Older messages exist"),
  total: z.number().int().min(0).describe("All messages of the conversation, expired ones not counted"),
});
