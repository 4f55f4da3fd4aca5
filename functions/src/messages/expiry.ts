import type { Timestamp } from "firebase-admin/firestore";

/**
 * The rules of disappearing messages, as pure functions of a stored message and the time (no reads:
 * tested in test/unit/message-expiry.test.ts). A message sent with `expiresInSeconds` carries
 * `expiresAt` = its server `timestamp` + that many seconds. From `expiresAt` on (inclusive) it is
 * expired: in no history page, no `total`, no backlog, never delivered or acknowledged. Its document is
 * deleted by the sweep (expiry-sweep.ts) or by the Firestore TTL policy on `messages.expiresAt`, which
 * may lag by a day: every read path therefore asks isExpired as well, so the cut is exact to the
 * millisecond whatever the deletion's lag.
 */

/** The contract's bounds of `expiresInSeconds`: 5 seconds to 30 days. */
export const MIN_EXPIRES_IN_SECONDS = 5;
export const MAX_EXPIRES_IN_SECONDS = 30 * 24 * 60 * 60;

/** What the expiry rules read of a stored message. */
export interface Expiring {
  timestamp: Timestamp;
  expiresAt?: Timestamp;
  deliveredAt: Timestamp | null;
}

/** When a message sent at `timestampMs` with `expiresInSeconds` expires (undefined: never). */
export function expiresAtMsOf(timestampMs: number, expiresInSeconds: number | undefined): number | undefined {
  return expiresInSeconds === undefined ? undefined : timestampMs + expiresInSeconds * 1000;
}

/** Expired at `now`: from expiresAt on, inclusive. A message without expiresAt never expires. */
export function isExpired(message: Pick<Expiring, "expiresAt">, now: Date): boolean {
  return message.expiresAt !== undefined && message.expiresAt.toMillis() <= now.getTime();
}

/** Same, for a record as clients see it (expiresAt an ISO string). */
export function isRecordExpired(record: { expiresAt?: string }, now: Date): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now.getTime();
}

/**
 * The `expiresInSeconds` the message was sent with, recovered from what is stored (expiresAt and
 * timestamp are written from the same millisecond, so the difference is exact): a retry must repeat it.
 */
export function expiresInSecondsOf(message: Pick<Expiring, "timestamp" | "expiresAt">): number | undefined {
  return message.expiresAt === undefined ? undefined : (message.expiresAt.toMillis() - message.timestamp.toMillis()) / 1000;
}

/**
 * What the sweep does with a message it found expired, decided again inside its transaction on what
 * that transaction read (the message, and the notice stored under its id):
 * - "gone": nothing to do (already deleted: by another sweeper, by the TTL policy), or not expired;
 * - "ours": nothing to do, but the notice there was written by this very sweep call (`sweepId`): an
 *   attempt the SDK retried after it had committed, which must still report what it wrote;
 * - "delete": delete it, silently: the receiver acknowledged it before it expired (or its notice is
 *   already written);
 * - "delete-and-notify": delete it and leave the sender a `message_expired` notice: it reached
 *   expiresAt before its receiver acknowledged it.
 */
export type ExpiryOutcome = "gone" | "ours" | "delete" | "delete-and-notify";

export function decideExpiry(message: Expiring | undefined, notice: { sweepId: string } | undefined, now: Date, sweepId: string): ExpiryOutcome {
  if (!message) return notice?.sweepId === sweepId ? "ours" : "gone";
  if (!isExpired(message, now)) return "gone";
  return message.deliveredAt === null && !notice ? "delete-and-notify" : "delete";
}

/**
 * An acknowledgement counts only before expiresAt: one at or after it is ignored (the message expired
 * undelivered, and its sender is told so), so a message is either delivered or expired, never both.
 */
export function canStillBeAcknowledged(message: Pick<Expiring, "expiresAt">, at: Date): boolean {
  return !isExpired(message, at);
}
