import { Timestamp } from "firebase-admin/firestore";
import { describe, expect, it } from "vitest";
import type { FileDraft, StoredFile } from "../../functions/src/files/repository";
import {
  decideUpload,
  fullQuotaRefusal,
  usageAfterRemoval,
  type UploadDecision,
  type UploadState,
} from "../../functions/src/files/upload-decision";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const TERMS = { ttlMs: 60_000, quotaBytes: 1000 };

const draft: FileDraft = {
  uploaderId: "user_alice",
  receiverId: "user_bob",
  filename: "notes.bin",
  size: 300,
  iv: "aXY=",
  authTag: "dGFn",
  signature: "c2ln",
  storagePath: "files/file_new",
};

const state = (overrides: Partial<UploadState> = {}): UploadState => ({
  ownCommit: undefined,
  receiverExists: true,
  blockedByReceiver: false,
  usage: { bytes: 0, files: 0 },
  ...overrides,
});

const refusal = (decision: UploadDecision) => {
  if (decision.kind !== "refused") throw new Error(`expected a refusal, got ${decision.kind}`);
  return decision.error;
};

describe("decideUpload", () => {
  it("when the file fits, then it is stored with its lifetime and counted in the uploader's usage", () => {
    expect(decideUpload(state({ usage: { bytes: 700, files: 2 } }), draft, NOW, TERMS)).toEqual({
      kind: "store",
      file: { ...draft, uploadedAt: Timestamp.fromDate(NOW), expiresAt: Timestamp.fromMillis(NOW.getTime() + 60_000) },
      usage: { bytes: 1000, files: 3 },
    });
  });

  it("when the record is already there (an SDK retry), then nothing is written", () => {
    const ownCommit: StoredFile = { ...draft, uploadedAt: Timestamp.fromDate(NOW), expiresAt: Timestamp.fromDate(NOW) };
    expect(decideUpload(state({ ownCommit, receiverExists: false }), draft, NOW, TERMS)).toEqual({ kind: "stored", file: ownCommit });
  });

  it("when the receiver does not exist, then NOT_FOUND on receiverId", () => {
    expect(refusal(decideUpload(state({ receiverExists: false }), draft, NOW, TERMS))).toMatchObject({
      code: "NOT_FOUND",
      details: { field: "receiverId" },
    });
  });

  it("when the receiver blocks the uploader, then BLOCKED", () => {
    expect(refusal(decideUpload(state({ blockedByReceiver: true }), draft, NOW, TERMS)).code).toBe("BLOCKED");
  });

  it("when the file does not fit in the quota, then QUOTA_EXCEEDED saying what is used", () => {
    expect(refusal(decideUpload(state({ usage: { bytes: 701, files: 1 } }), draft, NOW, TERMS))).toMatchObject({
      code: "QUOTA_EXCEEDED",
      status: 413,
      details: { quotaBytes: 1000, usedBytes: 701 },
    });
  });
});

describe("fullQuotaRefusal", () => {
  it("when the quota has room, then no refusal; when it is full, then QUOTA_EXCEEDED before the body is read", () => {
    expect(fullQuotaRefusal(999, 1000)).toBeUndefined();
    expect(fullQuotaRefusal(1000, 1000)).toMatchObject({ code: "QUOTA_EXCEEDED", details: { usedBytes: 1000 } });
  });
});

describe("usageAfterRemoval", () => {
  it("when files are removed, then their bytes and count are given back, never below zero", () => {
    expect(usageAfterRemoval({ bytes: 500, files: 3 }, [{ size: 100 }, { size: 150 }])).toEqual({ bytes: 250, files: 1 });
    expect(usageAfterRemoval({ bytes: 50, files: 0 }, [{ size: 100 }])).toEqual({ bytes: 0, files: 0 });
  });
});
