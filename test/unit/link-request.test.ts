import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decideAcknowledge,
  decideAnswer,
  decideRead,
  LINK_REQUEST_TTL_SECONDS,
  startLinkRequest,
  statusOf,
  type AnswerDecision,
  type LinkApproval,
  type LinkRequest,
} from "../../functions/src/devices/link-request";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const later = (ms: number) => new Date(NOW.getTime() + ms);
const pem = (namedCurve: string) => generateKeyPairSync("ec", { namedCurve }).publicKey.export({ type: "spki", format: "pem" }).toString();

const requester = { userId: "user_alice", deviceId: "dev_phone" };
const laptop = { userId: "user_alice", deviceId: "dev_laptop" };
const bob = { userId: "user_bob", deviceId: "dev_bob" };
const approval = (): LinkApproval => ({ ephemeralPublicKey: pem("P-256"), encryptedPayload: "cGF5bG9hZA==", iv: "aXY=", authTag: "dGFn", signature: "c2ln" });
const pending = (): LinkRequest => ({ id: "link_1", ...startLinkRequest(requester, "Phone", pem("P-256"), NOW) });
const approved = (): LinkRequest => {
  const request = pending();
  const decision = decideAnswer(request, laptop, { approval: approval(), answeredAt: later(1000) });
  if (decision.kind !== "answer") throw new Error(decision.kind);
  return { ...request, ...decision.update };
};
const refusal = (decision: AnswerDecision) => {
  if (decision.kind !== "refused") throw new Error(`expected a refusal, got ${decision.kind}`);
  return decision.error;
};

describe("a link request's life", () => {
  it("when a request starts, then it is pending for 10 minutes and reads as expired after", () => {
    const request = pending();
    expect(request).toMatchObject({ userId: "user_alice", requesterDeviceId: "dev_phone", status: "pending", approval: null, answerOwed: false });
    expect(LINK_REQUEST_TTL_SECONDS).toBe(600);
    expect(statusOf(request, later(599_999))).toBe("pending");
    expect(statusOf(request, later(600_000))).toBe("expired");
  });

  it("when another device of the account approves, then the approval is stored and owed to the requester", () => {
    const request = approved();
    expect(request).toMatchObject({ status: "approved", answeredBy: "dev_laptop", answerOwed: true });
    expect(request.approval?.encryptedPayload).toBe("cGF5bG9hZA==");
  });

  it("when a rejection comes, then no payload is stored and the answer is owed", () => {
    const decision = decideAnswer(pending(), laptop, { approval: null, answeredAt: later(1000) });
    expect(decision).toMatchObject({ kind: "answer", update: { status: "rejected", approval: null, answerOwed: true } });
  });

  it("when someone outside the account, or nobody's request, is answered, then 404; the requester itself 403", () => {
    expect(refusal(decideAnswer(pending(), bob, { approval: null, answeredAt: later(1) })).code).toBe("NOT_FOUND");
    expect(refusal(decideAnswer(undefined, laptop, { approval: null, answeredAt: later(1) })).code).toBe("NOT_FOUND");
    expect(refusal(decideAnswer(pending(), requester, { approval: approval(), answeredAt: later(1) })).code).toBe("FORBIDDEN");
  });

  it("when answered already, expired, or on another curve, then 409, 410 and 400", () => {
    expect(refusal(decideAnswer(approved(), laptop, { approval: null, answeredAt: later(2000) }))).toMatchObject({ code: "LINK_REQUEST_NOT_PENDING", details: { status: "approved" } });
    expect(refusal(decideAnswer(pending(), laptop, { approval: null, answeredAt: later(600_000) })).code).toBe("LINK_REQUEST_EXPIRED");
    const p384 = { ...approval(), ephemeralPublicKey: pem("P-384") };
    expect(refusal(decideAnswer(pending(), laptop, { approval: p384, answeredAt: later(1) }))).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "ephemeralPublicKey" } });
  });

  it("when the device that asked is no longer signed in, then 410 and nothing is written", () => {
    const error = refusal(decideAnswer(pending(), laptop, { approval: approval(), answeredAt: later(1) }, false));
    expect(error).toMatchObject({ code: "LINK_REQUEST_EXPIRED", details: { status: "expired" } });
  });

  it("when the SDK retries an answer that committed, then it recognises its own and writes nothing", () => {
    const request = approved();
    expect(decideAnswer(request, laptop, { approval: approval(), answeredAt: later(1000) })).toEqual({ kind: "answered" });
    expect(decideAnswer(request, laptop, { approval: null, answeredAt: later(1000) }).kind).toBe("refused");
  });
});

describe("reading and acknowledging the answer", () => {
  it("when the requester reads an approval, then it gets the payload once, deleted by the same read", () => {
    const request = approved();
    const first = decideRead(request, requester, later(2000));
    expect(first.approval).toEqual(request.approval);
    expect(first.update).toEqual({ approval: null, answerOwed: false });
    expect(decideRead({ ...request, ...first.update }, requester, later(3000))).toEqual({ approval: null });
  });

  it("when another device reads it, then it never sees the payload and nothing changes", () => {
    expect(decideRead(approved(), laptop, later(2000))).toEqual({ approval: null });
  });

  it("when a payload is read past expiry, then it is not shown and is deleted", () => {
    expect(decideRead(approved(), requester, later(600_000))).toEqual({ approval: null, update: { approval: null, answerOwed: false } });
    expect(decideRead(approved(), laptop, later(600_000)).update).toEqual({ approval: null, answerOwed: false });
  });

  it("when the requester acknowledges, then the payload goes; anyone else's acknowledgement changes nothing", () => {
    expect(decideAcknowledge(approved(), requester)).toEqual({ approval: null, answerOwed: false });
    expect(decideAcknowledge(approved(), laptop)).toBeUndefined();
    expect(decideAcknowledge(approved(), { userId: "user_bob", deviceId: "dev_phone" })).toBeUndefined();
    expect(decideAcknowledge({ ...approved(), approval: null, answerOwed: false }, requester)).toBeUndefined();
    expect(decideAcknowledge(undefined, requester)).toBeUndefined();
  });
});
