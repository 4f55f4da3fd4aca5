import { Timestamp } from "firebase-admin/firestore";
import { pendingDevicesFor } from "../shared/device-delivery";
import { AppError, errors } from "../shared/errors";
import { conversationIdOf } from "../shared/ids";
import { rateLimited, takeToken, type RateLimitDecision } from "../shared/rate-limit";
import type { MessageDraft, StoredMessage } from "./record";
import { expiresAtMsOf, isExpired } from "./expiry";
import { isRetryOf } from "./retry";
import { sequenceNumberFor } from "./sequence";

/**
 * The rules of a send, as pure functions of what the storing transaction read (SendState): whether the
 * message is stored, answered as a retry, or refused, and what to write. MessageRepository reads and
 * writes; nothing here touches the database, so every rule is tested without it (test/unit/).
 */

/** The contract's window for a client timestamp: at most 5 minutes old, at most 60 s ahead. */
export const MAX_CLIENT_TIMESTAMP_AGE_MS = 5 * 60 * 1000;
export const MAX_CLIENT_TIMESTAMP_LEAD_MS = 60 * 1000;

/**
 * How long a nonce is remembered, from the message's storage: past this, the timestamp window refuses a
 * replay anyway. It is also how long a retry of the message is recognised (and answered as one).
 */
export const NONCE_RETENTION_MS = 15 * 60 * 1000;

export interface SendRatePolicy {
  burst: number;
  refillPerSecond: number;
}

/** The pair counter document: the last number used, and the pair's send-rate bucket. */
export interface PairCounter {
  lastSequence: number;
  lastTimestampMs: number;
  tokens: number;
  tokensAtMs: number;
}

/** The nonce record: which message used the nonce, remembered until expiresAt. */
export interface NonceRecord {
  senderId: string;
  messageId: string;
  expiresAt: Timestamp;
}

/** What the storing transaction read. */
export interface SendState {
  /** The message under the draft's own id: there only when the SDK retries an attempt that committed. */
  ownCommit: StoredMessage | undefined;
  /** The sender's session; true when the caller checks none. */
  sessionActive: boolean;
  pair: PairCounter | undefined;
  nonce: NonceRecord | undefined;
  /** The message the nonce record names, read with it. */
  nonceMessage: StoredMessage | undefined;
  receiverExists: boolean;
  /** The receiver blocks the sender. */
  blockedByReceiver: boolean;
  /** The receiver's device list (users/{id}.deviceIds), from the user document read for receiverExists. */
  receiverDevices?: string[];
}

/** What a send outside the clock window reads: it can only be answered as a retry. */
export type LateSendState = Pick<SendState, "sessionActive" | "nonce" | "nonceMessage">;

export type SendDecision =
  /** Write the message, the pair's counter and the nonce record. */
  | { kind: "store"; message: StoredMessage; counter: PairCounter; nonce: NonceRecord; rateLimit: RateLimitDecision }
  /** This very send is already stored (an SDK retry of a committed attempt): write nothing. */
  | { kind: "stored"; message: StoredMessage; rateLimit: RateLimitDecision }
  /** The client's retry of a message stored earlier under `messageId`: answer it again, write nothing. */
  | { kind: "retry"; messageId: string; message: StoredMessage }
  | { kind: "refused"; error: AppError };

type Refused = Extract<SendDecision, { kind: "refused" }>;
const refuse = (error: AppError): Refused => ({ kind: "refused", error });

/** Where the client's timestamp falls against the window. */
export function clientClockOf(draft: MessageDraft, now: Date): "ahead" | "within" | "behind" {
  const skew = now.getTime() - Date.parse(draft.sent.timestamp);
  if (skew < -MAX_CLIENT_TIMESTAMP_LEAD_MS) return "ahead";
  return skew > MAX_CLIENT_TIMESTAMP_AGE_MS ? "behind" : "within";
}

export const timestampAhead = () =>
  new AppError("STALE_TIMESTAMP", "timestamp is more than 60 seconds in the future", { field: "timestamp" });
const timestampTooOld = () => new AppError("STALE_TIMESTAMP", "timestamp is more than 5 minutes old", { field: "timestamp" });
const nonceUsed = () => new AppError("REPLAY_DETECTED", "This nonce was already used", { field: "nonce" });

/**
 * A send within the clock window. The order of the checks is the contract's: a retry is answered before
 * the rate and every other check but the session's. A block is checked after it, since the retried
 * message was stored before the block (and stays in history): answering it again stores nothing and
 * tells the sender nothing new.
 */
export function decideSend(state: SendState, draft: MessageDraft, now: Date, rate: SendRatePolicy): SendDecision {
  const nowMs = now.getTime();
  if (state.ownCommit) return { kind: "stored", message: state.ownCommit, rateLimit: takeSendToken(state.pair, nowMs, rate).decision };
  if (!state.sessionActive) return refuse(errors.sessionEnded());
  const retried = retriedMessage(state, draft, nowMs);
  if (retried) return retried;
  if (!state.receiverExists) return refuse(errors.receiverNotFound());
  if (state.blockedByReceiver) return refuse(errors.blocked());

  const { tokens, decision: rateLimit } = takeSendToken(state.pair, nowMs, rate);
  if (!rateLimit.allowed) return refuse(rateLimited(rateLimit));
  // A record past its retention may linger until the TTL policy deletes it: it still refuses the nonce.
  if (state.nonce) return refuse(nonceUsed());
  const sequenceNumber = sequenceNumberFor(draft.sent.sequenceNumber, state.pair?.lastSequence ?? 0);
  if (sequenceNumber instanceof AppError) return refuse(sequenceNumber);
  // Server time, but never earlier than the pair's previous message (clocks of instances differ):
  // ordering by timestamp then agrees with sequenceNumber.
  const timestampMs = Math.max(nowMs, state.pair?.lastTimestampMs ?? 0);
  return {
    kind: "store",
    message: storedMessageOf(draft, sequenceNumber, timestampMs, pendingDevicesFor(state.receiverDevices)),
    counter: { lastSequence: sequenceNumber, lastTimestampMs: timestampMs, tokens, tokensAtMs: nowMs },
    nonce: { senderId: draft.senderId, messageId: draft.messageId, expiresAt: Timestamp.fromMillis(nowMs + NONCE_RETENTION_MS) },
    rateLimit,
  };
}

/**
 * A send whose client timestamp is too old to be stored: only a retry of a message already stored is
 * answered (a client whose answer was lost must still learn its message id), for as long as the nonce
 * is remembered.
 */
export function decideLateSend(state: LateSendState, draft: MessageDraft, now: Date): Extract<SendDecision, { kind: "retry" | "refused" }> {
  if (!state.sessionActive) return refuse(errors.sessionEnded());
  return retriedMessage(state, draft, now.getTime()) ?? refuse(timestampTooOld());
}

/**
 * The message stored under the draft's nonce, if the nonce is still remembered and the draft retries it.
 * A disappearing message that has expired is not answered again (whether or not its document is deleted
 * yet, so the answer does not depend on the sweep's timing): its nonce stays used, 409 REPLAY_DETECTED.
 */
function retriedMessage(state: LateSendState, draft: MessageDraft, nowMs: number): Extract<SendDecision, { kind: "retry" }> | undefined {
  const { nonce, nonceMessage } = state;
  if (!nonce || nonce.senderId !== draft.senderId || nonce.expiresAt.toMillis() <= nowMs) return undefined;
  if (!nonceMessage || isExpired(nonceMessage, new Date(nowMs))) return undefined;
  return isRetryOf(draft, nonceMessage) ? { kind: "retry", messageId: nonce.messageId, message: nonceMessage } : undefined;
}

/** The pair's send-rate bucket, as the shared token bucket sees it (a burst, refilled at a steady rate). */
function takeSendToken(pair: PairCounter | undefined, nowMs: number, rate: SendRatePolicy) {
  const policy = { limit: rate.burst, windowSeconds: rate.burst / rate.refillPerSecond };
  const bucket = pair ? { tokens: pair.tokens, updatedAtMs: pair.tokensAtMs } : undefined;
  const { state, decision } = takeToken(bucket, nowMs, policy);
  return { tokens: state.tokens, decision };
}

/** The one place a send's fields become the stored document. */
function storedMessageOf(draft: MessageDraft, sequenceNumber: number, timestampMs: number, pendingDevices: string[]): StoredMessage {
  const { sent } = draft;
  // From the stored timestamp, so that expiresAt - timestamp is exactly what was asked (retry.ts compares it).
  const expiresAtMs = expiresAtMsOf(timestampMs, sent.expiresInSeconds);
  return {
    senderId: draft.senderId,
    receiverId: sent.receiverId,
    conversationId: conversationIdOf(draft.senderId, sent.receiverId),
    encryptedContent: sent.encryptedContent,
    iv: sent.iv,
    authTag: sent.authTag,
    nonce: sent.nonce,
    signature: sent.signature,
    messageType: sent.messageType,
    sequenceNumber,
    timestamp: Timestamp.fromMillis(timestampMs),
    clientTimestamp: sent.timestamp,
    ...(expiresAtMs === undefined ? {} : { expiresAt: Timestamp.fromMillis(expiresAtMs) }),
    deliveredAt: null,
    // One field of the one message write, at most the device cap's ids: no write per device.
    pendingDevices,
  };
}
