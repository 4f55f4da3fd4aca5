import { Timestamp } from "firebase-admin/firestore";
import { describe, expect, it } from "vitest";
import {
  canStillBeAcknowledged,
  decideExpiry,
  expiresAtMsOf,
  expiresInSecondsOf,
  isExpired,
  isRecordExpired,
  MAX_EXPIRES_IN_SECONDS,
  MIN_EXPIRES_IN_SECONDS,
} from "../../functions/src/messages/expiry";
import type { MessageDraft, StoredMessage } from "../../functions/src/messages/record";
import { isRetryOf } from "../../functions/src/messages/retry";
import { sendMessageSchema } from "../../functions/src/messages/schema";
import { decideLateSend, decideSend, type SendState } from "../../functions/src/messages/send-decision";
import { newId } from "../../functions/src/shared/ids";
import { canAcknowledgeExpiryNotice } from "../../functions/src/shared/policies";

/** The rules of disappearing messages (messages/expiry.ts), and how the send decision applies them. */

const NOW = new Date("2030-01-01T12:00:00.000Z");
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);
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

const state = (overrides: Partial<SendState> = {}): SendState => ({
  ownCommit: undefined,
  sessionActive: true,
  pair: undefined,
  nonce: undefined,
  nonceMessage: undefined,
  receiverExists: true,
  blockedByReceiver: false,
  ...overrides,
});

const stored = (overrides: Partial<StoredMessage> = {}): StoredMessage => ({
  senderId: "user_alice",
  receiverId: "user_bob",
  conversationId: "user_alice__user_bob",
  encryptedContent: "Y2lwaGVy",
  iv: "aXY=",
  authTag: "dGFn",
  nonce: "bm9uY2U=",
  signature: "c2ln",
  messageType: "text",
  sequenceNumber: 1,
  timestamp: Timestamp.fromDate(NOW),
  clientTimestamp: NOW.toISOString(),
  deliveredAt: null,
  ...overrides,
});

const expiring = (seconds: number, overrides: Partial<StoredMessage> = {}) =>
  stored({ expiresAt: Timestamp.fromMillis(NOW.getTime() + seconds * 1000), ...overrides });

describe("message expiry", () => {
  it("when a message has expiresAt, then it is expired from that millisecond on, and one without never is", () => {
    const message = expiring(5);
    expect(isExpired(message, at(4999))).toBe(false);
    expect(isExpired(message, at(5000))).toBe(true);
    expect(isExpired(stored(), at(10 ** 12))).toBe(false);
    expect(isRecordExpired({ expiresAt: at(5000).toISOString() }, at(4999))).toBe(false);
    expect(isRecordExpired({ expiresAt: at(5000).toISOString() }, at(5000))).toBe(true);
    expect(isRecordExpired({}, at(10 ** 12))).toBe(false);
  });

  it("when a TTL is given, then expiresAt is the stored timestamp plus it, and the TTL is recovered exactly from what is stored", () => {
    expect(expiresAtMsOf(NOW.getTime(), 5)).toBe(NOW.getTime() + 5000);
    expect(expiresAtMsOf(NOW.getTime(), undefined)).toBeUndefined();
    expect(expiresInSecondsOf(expiring(MAX_EXPIRES_IN_SECONDS))).toBe(MAX_EXPIRES_IN_SECONDS);
    expect(expiresInSecondsOf(stored())).toBeUndefined();
  });

  it("when the sweep looks at a message, then it deletes it only once expired, with a notice only if never acknowledged and none written yet", () => {
    expect(decideExpiry(undefined, undefined, NOW, "sweep_1")).toBe("gone");
    expect(decideExpiry(expiring(5), undefined, at(4999), "sweep_1")).toBe("gone");
    expect(decideExpiry(stored(), undefined, at(10 ** 9), "sweep_1")).toBe("gone");
    expect(decideExpiry(expiring(5), undefined, at(5000), "sweep_1")).toBe("delete-and-notify");
    expect(decideExpiry(expiring(5, { deliveredAt: Timestamp.fromDate(at(1000)) }), undefined, at(5000), "sweep_1")).toBe("delete");
    expect(decideExpiry(expiring(5), { sweepId: "sweep_0" }, at(5000), "sweep_1")).toBe("delete");
  });

  it("when the message is gone and the notice is this sweep call's own (an SDK retry after commit), then it is reported, not rewritten", () => {
    expect(decideExpiry(undefined, { sweepId: "sweep_1" }, at(5000), "sweep_1")).toBe("ours");
    expect(decideExpiry(undefined, { sweepId: "sweep_0" }, at(5000), "sweep_1")).toBe("gone");
  });

  it("when the receiver acknowledges, then only before expiresAt", () => {
    expect(canStillBeAcknowledged(expiring(5), at(4999))).toBe(true);
    expect(canStillBeAcknowledged(expiring(5), at(5000))).toBe(false);
    expect(canStillBeAcknowledged(stored(), at(10 ** 12))).toBe(true);
  });

  it("when a notice is acknowledged, then only by the sender it went to", () => {
    expect(canAcknowledgeExpiryNotice("user_alice", { senderId: "user_alice" })).toBe(true);
    expect(canAcknowledgeExpiryNotice("user_bob", { senderId: "user_alice" })).toBe(false);
  });
});

describe("expiresInSeconds on a send", () => {
  it("when it is an integer from 5 to 2,592,000, then the schema takes it; otherwise it names the field", () => {
    // A receiver id of the shape the server mints (the decision tests' short ids are not).
    const sent = { ...draft().sent, receiverId: newId("user") };
    const body = (expiresInSeconds: unknown) => ({ ...sent, expiresInSeconds });
    expect(sendMessageSchema.safeParse(body(MIN_EXPIRES_IN_SECONDS)).success).toBe(true);
    expect(sendMessageSchema.safeParse(body(MAX_EXPIRES_IN_SECONDS)).success).toBe(true);
    expect(sendMessageSchema.safeParse(sent).success).toBe(true);
    for (const bad of [4, 0, -5, MAX_EXPIRES_IN_SECONDS + 1, 5.5, "60", null, Number.NaN]) {
      const result = sendMessageSchema.safeParse(body(bad));
      expect(result.success, String(bad)).toBe(false);
      expect(result.error?.issues[0]?.path, String(bad)).toEqual(["expiresInSeconds"]);
    }
  });

  it("when a message is stored with it, then expiresAt is its stored timestamp plus the TTL; without it, there is no expiresAt", () => {
    const pair = { lastSequence: 1, lastTimestampMs: NOW.getTime() + 700, tokens: 3, tokensAtMs: NOW.getTime() };
    const decision = decideSend(state({ pair }), draft({ expiresInSeconds: 60 }), NOW, RATE);
    expect(decision.kind).toBe("store");
    if (decision.kind !== "store") return;
    expect(decision.message.expiresAt?.toMillis()).toBe(NOW.getTime() + 700 + 60_000);
    const plain = decideSend(state(), draft(), NOW, RATE);
    expect(plain.kind === "store" && "expiresAt" in plain.message).toBe(false);
  });

  it("when a retry repeats the nonce, then expiresInSeconds is part of the content it must repeat", () => {
    const original = expiring(60);
    expect(isRetryOf(draft({ expiresInSeconds: 60 }), original)).toBe(true);
    expect(isRetryOf(draft({ expiresInSeconds: 61 }), original)).toBe(false);
    expect(isRetryOf(draft(), original)).toBe(false);
    expect(isRetryOf(draft({ expiresInSeconds: 60 }), stored())).toBe(false);
    expect(isRetryOf(draft(), stored())).toBe(true);
  });

  it("when the message a retry names has expired, then it is not answered again: the nonce stays used (REPLAY_DETECTED)", () => {
    const nonce = { senderId: "user_alice", messageId: "msg_old", expiresAt: Timestamp.fromMillis(NOW.getTime() + 15 * 60_000) };
    const original = expiring(5);
    const retry = draft({ expiresInSeconds: 5 });
    expect(decideSend(state({ nonce, nonceMessage: original }), retry, at(4999), RATE)).toMatchObject({ kind: "retry", messageId: "msg_old" });
    const late = decideSend(state({ nonce, nonceMessage: original }), retry, at(5000), RATE);
    expect(late.kind === "refused" && late.error.code).toBe("REPLAY_DETECTED");
    const outsideWindow = decideLateSend({ sessionActive: true, nonce, nonceMessage: original }, retry, at(6 * 60_000));
    expect(outsideWindow.kind === "refused" && outsideWindow.error.code).toBe("STALE_TIMESTAMP");
  });
});
