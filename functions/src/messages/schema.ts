import { z } from "zod";
import { AppError } from "../shared/errors";
import { BASE64_TEXT, base64Text, idOf, text } from "../shared/validation";

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
  encryptedContent: text().min(1, "is required").regex(BASE64_TEXT, "must be base64 text"),
  iv: base64Text(64),
  authTag: base64Text(64),
  nonce: base64Text(128),
  signature: base64Text(1024),
  timestamp: text()
    .max(40, "must be an ISO 8601 time")
    .regex(ISO_8601, "must be an ISO 8601 time")
    .refine((value) => !Number.isNaN(Date.parse(value)), "must be an ISO 8601 time"),
  messageType: text()
    .regex(/^[a-z][a-z0-9_]{0,19}$/, "must be 1-20 lower-case letters, digits or underscores")
    .default("text"),
  sequenceNumber: z
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(1, "must be at least 1")
    .max(Number.MAX_SAFE_INTEGER, "is too large")
    .optional(),
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

const count = (max: number, fallback: number, min: number) =>
  z.coerce
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);

export const historyQuerySchema = z.object({
  limit: count(HISTORY_MAX_LIMIT, HISTORY_DEFAULT_LIMIT, 1),
  offset: count(HISTORY_MAX_OFFSET, 0, 0),
  before: idOf("msg").optional(),
});
export type HistoryQuery = z.infer<typeof historyQuerySchema>;
