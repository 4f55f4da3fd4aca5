import { generateKeyPairSync } from "node:crypto";
import { Timestamp } from "firebase-admin/firestore";
import { describe, expect, it } from "vitest";
import type { Exchange } from "../../functions/src/keyexchange/repository";
import { decideResponse, startExchange, statusOf, type ResponseDecision } from "../../functions/src/keyexchange/state-machine";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const pem = (namedCurve: string) =>
  generateKeyPairSync("ec", { namedCurve }).publicKey.export({ type: "spki", format: "pem" }).toString();
const P256 = pem("P-256");

const pending = (): Exchange => ({
  id: "exchange_1",
  ...startExchange("user_alice", { targetUserId: "user_bob", ephemeralPublicKey: P256, signature: "c2ln" }, NOW, 60),
});
const response = { targetEphemeralPublicKey: pem("P-256"), targetSignature: "cmVzcA==", completedAt: new Date(NOW.getTime() + 1000) };

const refusal = (decision: ResponseDecision) => {
  if (decision.kind !== "refused") throw new Error(`expected a refusal, got ${decision.kind}`);
  return decision.error;
};

describe("startExchange and statusOf", () => {
  it("when an exchange starts, then it is pending for its lifetime and reads as expired after", () => {
    const exchange = pending();
    expect(exchange).toMatchObject({ initiatorId: "user_alice", targetId: "user_bob", pairKey: "user_alice__user_bob", status: "pending" });
    expect(statusOf(exchange, new Date(NOW.getTime() + 59_999))).toBe("pending");
    expect(statusOf(exchange, new Date(NOW.getTime() + 60_000))).toBe("expired");
  });
});

describe("decideResponse", () => {
  it("when the target answers a pending exchange on the initiator's curve, then it is completed", () => {
    expect(decideResponse(pending(), "user_bob", response)).toEqual({
      kind: "complete",
      update: {
        status: "completed",
        targetEphemeralPublicKey: response.targetEphemeralPublicKey,
        targetSignature: response.targetSignature,
        completedAt: Timestamp.fromDate(response.completedAt),
      },
    });
  });

  it("when the same response finds itself stored (an SDK retry), then nothing is written", () => {
    const completed = { ...pending(), status: "completed" as const, targetSignature: response.targetSignature, completedAt: Timestamp.fromDate(response.completedAt) };
    expect(decideResponse(completed, "user_bob", response)).toEqual({ kind: "completed" });
  });

  it("when there is no such exchange, or the caller is not a participant, then the same NOT_FOUND", () => {
    for (const decision of [decideResponse(undefined, "user_bob", response), decideResponse(pending(), "user_eve", response)]) {
      expect(refusal(decision)).toMatchObject({ code: "NOT_FOUND", message: "Key exchange not found", details: { field: "exchangeId" } });
    }
  });

  it("when the initiator answers their own exchange, then FORBIDDEN", () => {
    expect(refusal(decideResponse(pending(), "user_alice", response)).code).toBe("FORBIDDEN");
  });

  it("when the exchange has expired, then EXCHANGE_EXPIRED", () => {
    const late = { ...response, completedAt: new Date(NOW.getTime() + 60_000) };
    expect(refusal(decideResponse(pending(), "user_bob", late))).toMatchObject({ code: "EXCHANGE_EXPIRED", details: { status: "expired" } });
  });

  it("when the exchange was superseded or completed, then EXCHANGE_NOT_PENDING naming its status", () => {
    expect(refusal(decideResponse({ ...pending(), status: "superseded" }, "user_bob", response))).toMatchObject({
      code: "EXCHANGE_NOT_PENDING",
      message: "This key exchange is superseded",
    });
    expect(refusal(decideResponse({ ...pending(), status: "completed" }, "user_bob", response)).code).toBe("EXCHANGE_NOT_PENDING");
  });

  it("when the response key is on another curve, then VALIDATION_ERROR on ephemeralPublicKey", () => {
    const otherCurve = { ...response, targetEphemeralPublicKey: pem("P-384") };
    expect(refusal(decideResponse(pending(), "user_bob", otherCurve))).toMatchObject({
      code: "VALIDATION_ERROR",
      details: { field: "ephemeralPublicKey" },
    });
  });
});
