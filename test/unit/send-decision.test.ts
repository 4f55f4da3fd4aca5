import { Timestamp } from "firebase-admin/firestore";
import { describe, expect, it } from "vitest";
import type { MessageDraft, StoredMessage } from "../../functions/src/messages/record";
import {
  clientClockOf,
  decideLateSend,
  decideSend,
  NONCE_RETENTION_MS,
  type SendDecision,
  type SendState,
} from "../../functions/src/messages/send-decision";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const RATE = { burst: 3, refillPerSecond: 1 };

const draft = (sent: Partial<MessageDraft["sent"]> = {}): MessageDraft => ({
  messageId: "msg_new",
  senderId: "user_alice",
  sent: {
    receiverId: "user_bob",
    encryptedContent: "Y2lwaGVy",
    iv: "aXY=",
    authTag: "dGFn",
    nonce: "bm9uY2U=",
    signature: "c2ln",
    timestamp: NOW.toISOString(),
    messageType: "text",
    ...sent,
  },
});

const storedFrom = (d: MessageDraft, sequenceNumber = 1): StoredMessage => ({
  senderId: d.senderId,
  receiverId: d.sent.receiverId,
  conversationId: "user_alice__user_bob",
  encryptedContent: d.sent.encryptedContent,
  iv: d.sent.iv,
  authTag: d.sent.authTag,
  nonce: d.sent.nonce,
  signature: d.sent.signature,
  messageType: d.sent.messageType,
  sequenceNumber,
  timestamp: Timestamp.fromDate(NOW),
  clientTimestamp: d.sent.timestamp,
  deliveredAt: null,
  pendingDevices: ["dev_bobphonebobphonebobphone"],
});

const state = (overrides: Partial<SendState> = {}): SendState => ({
  ownCommit: undefined,
  sessionActive: true,
  pair: undefined,
  nonce: undefined,
  nonceMessage: undefined,
  receiverExists: true,
  receiverDevices: ["dev_bobphonebobphonebobphone"],
  blockedByReceiver: false,
  ...overrides,
});

/** A nonce record of alice's naming the message `msg_old`, still remembered. */
const liveNonce = { senderId: "user_alice", messageId: "msg_old", expiresAt: Timestamp.fromMillis(NOW.getTime() + 1000) };

const refusal = (decision: SendDecision) => {
  if (decision.kind !== "refused") throw new Error(`expected a refusal, got ${decision.kind}`);
  return { code: decision.error.code, message: decision.error.message, details: decision.error.details };
};

describe("decideSend", () => {
  it("when a first message is sent, then it is stored as number 1 at server time, with its nonce remembered", () => {
    const decision = decideSend(state(), draft(), NOW, RATE);
    expect(decision.kind).toBe("store");
    if (decision.kind !== "store") return;
    expect(decision.message).toEqual(storedFrom(draft()));
    expect(decision.counter).toEqual({ lastSequence: 1, lastTimestampMs: NOW.getTime(), tokens: 2, tokensAtMs: NOW.getTime() });
    expect(decision.nonce).toEqual({ senderId: "user_alice", messageId: "msg_new", expiresAt: Timestamp.fromMillis(NOW.getTime() + NONCE_RETENTION_MS) });
    expect(decision.rateLimit).toMatchObject({ allowed: true, remaining: 2 });
  });

  it("when the pair has sent before, then the next number follows and time never goes back", () => {
    const pair = { lastSequence: 7, lastTimestampMs: NOW.getTime() + 500, tokens: 3, tokensAtMs: NOW.getTime() };
    const decision = decideSend(state({ pair }), draft(), NOW, RATE);
    expect(decision.kind === "store" && decision.message.sequenceNumber).toBe(8);
    expect(decision.kind === "store" && decision.message.timestamp.toMillis()).toBe(NOW.getTime() + 500);
  });

  it("when the client names a sequence number within bounds, then it is stored as sent", () => {
    const decision = decideSend(state(), draft({ sequenceNumber: 42 }), NOW, RATE);
    expect(decision.kind === "store" && decision.message.sequenceNumber).toBe(42);
  });

  it("when the draft's own message is already stored (an SDK retry), then nothing is written, not even under an ended session", () => {
    const ownCommit = storedFrom(draft());
    const decision = decideSend(state({ ownCommit, sessionActive: false }), draft(), NOW, RATE);
    expect(decision).toMatchObject({ kind: "stored", message: ownCommit });
  });

  it("when the session has ended, then UNAUTHORIZED", () => {
    expect(refusal(decideSend(state({ sessionActive: false }), draft(), NOW, RATE))).toMatchObject({
      code: "UNAUTHORIZED",
      message: "Session has ended; log in again",
    });
  });

  it("when the same send comes again under a remembered nonce, then it is answered as a retry, before the block and the rate", () => {
    const original = storedFrom(draft(), 5);
    const emptyBucket = { lastSequence: 5, lastTimestampMs: NOW.getTime(), tokens: 0, tokensAtMs: NOW.getTime() };
    const decision = decideSend(
      state({ nonce: liveNonce, nonceMessage: original, blockedByReceiver: true, pair: emptyBucket }),
      draft(),
      NOW,
      RATE,
    );
    expect(decision).toEqual({ kind: "retry", messageId: "msg_old", message: original });
  });

  it("when the receiver does not exist, then NOT_FOUND on receiverId", () => {
    expect(refusal(decideSend(state({ receiverExists: false }), draft(), NOW, RATE))).toEqual({
      code: "NOT_FOUND",
      message: "Receiver not found",
      details: { field: "receiverId" },
    });
  });

  it("when the receiver blocks the sender, then BLOCKED", () => {
    expect(refusal(decideSend(state({ blockedByReceiver: true }), draft(), NOW, RATE)).code).toBe("BLOCKED");
  });

  it("when the pair's bucket is empty, then RATE_LIMITED with Retry-After", () => {
    const pair = { lastSequence: 3, lastTimestampMs: NOW.getTime(), tokens: 0, tokensAtMs: NOW.getTime() };
    const decision = decideSend(state({ pair }), draft(), NOW, RATE);
    expect(refusal(decision)).toMatchObject({ code: "RATE_LIMITED", details: { retryAfterSeconds: 1 } });
    expect(decision.kind === "refused" && decision.error.headers["Retry-After"]).toBe("1");
  });

  it("when the nonce was used for other content, then REPLAY_DETECTED on nonce", () => {
    const decision = decideSend(state({ nonce: liveNonce, nonceMessage: storedFrom(draft({ encryptedContent: "b3RoZXI=" })) }), draft(), NOW, RATE);
    expect(refusal(decision)).toEqual({ code: "REPLAY_DETECTED", message: "This nonce was already used", details: { field: "nonce" } });
  });

  it("when a nonce record outlived its retention, then it is no retry but still refuses the nonce", () => {
    const expired = { ...liveNonce, expiresAt: Timestamp.fromDate(NOW) };
    const decision = decideSend(state({ nonce: expired, nonceMessage: storedFrom(draft()) }), draft(), NOW, RATE);
    expect(refusal(decision).code).toBe("REPLAY_DETECTED");
  });

  it("when the sequence number is not above the pair's last, then REPLAY_DETECTED naming the last", () => {
    const pair = { lastSequence: 9, lastTimestampMs: NOW.getTime(), tokens: 3, tokensAtMs: NOW.getTime() };
    expect(refusal(decideSend(state({ pair }), draft({ sequenceNumber: 9 }), NOW, RATE))).toMatchObject({
      code: "REPLAY_DETECTED",
      details: { field: "sequenceNumber", lastSequenceNumber: 9 },
    });
  });

  it.each([
    ["0", 0],
    ["2^31", 2 ** 31],
    ["more than 1000 past the last", 1001],
  ])("when the sequence number is %s, then VALIDATION_ERROR naming the last", (_name, sequenceNumber) => {
    expect(refusal(decideSend(state(), draft({ sequenceNumber }), NOW, RATE))).toMatchObject({
      code: "VALIDATION_ERROR",
      details: { field: "sequenceNumber", lastSequenceNumber: 0 },
    });
  });
});

describe("decideLateSend", () => {
  it("when a late send retries a remembered message, then it is answered as that message", () => {
    const original = storedFrom(draft());
    expect(decideLateSend({ sessionActive: true, nonce: liveNonce, nonceMessage: original }, draft(), NOW)).toEqual({
      kind: "retry",
      messageId: "msg_old",
      message: original,
    });
  });

  it("when a late send retries nothing, then STALE_TIMESTAMP", () => {
    expect(refusal(decideLateSend({ sessionActive: true, nonce: undefined, nonceMessage: undefined }, draft(), NOW))).toMatchObject({
      code: "STALE_TIMESTAMP",
      message: "timestamp is more than 5 minutes old",
    });
  });

  it("when the session has ended, then UNAUTHORIZED even for a retry", () => {
    const decision = decideLateSend({ sessionActive: false, nonce: liveNonce, nonceMessage: storedFrom(draft()) }, draft(), NOW);
    expect(refusal(decision).code).toBe("UNAUTHORIZED");
  });
});

describe("clientClockOf", () => {
  const at = (offsetMs: number) => draft({ timestamp: new Date(NOW.getTime() + offsetMs).toISOString() });

  it("when the client's clock is within 5 minutes behind and 60 s ahead, then within", () => {
    expect(clientClockOf(at(-5 * 60_000), NOW)).toBe("within");
    expect(clientClockOf(at(60_000), NOW)).toBe("within");
  });

  it("when it is more than 60 s ahead, then ahead; more than 5 minutes behind, then behind", () => {
    expect(clientClockOf(at(60_001), NOW)).toBe("ahead");
    expect(clientClockOf(at(-5 * 60_000 - 1), NOW)).toBe("behind");
  });
});
