import { Timestamp } from "firebase-admin/firestore";
import { describe, expect, it } from "vitest";
import {
  decideRemoval,
  fileAccess,
  lifetimeMsOf,
  TOMBSTONE_RETENTION_MS,
  type FileTombstone,
  type RemovalCandidate,
} from "../../functions/src/files/lifecycle";
import type { StoredFile } from "../../functions/src/files/repository";
import { uploadFieldsSchemaFor } from "../../functions/src/files/schema";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const at = (offsetMs: number) => Timestamp.fromMillis(NOW.getTime() + offsetMs);

const file: StoredFile = {
  uploaderId: "user_alice",
  receiverId: "user_bob",
  filename: "notes.bin",
  size: 300,
  iv: "aXY=",
  authTag: "dGFn",
  signature: "c2ln",
  storagePath: "files/file_one",
  uploadedAt: at(-60_000),
  expiresAt: at(60_000),
  deleteAfterDownload: true,
};

const tombstone: FileTombstone = {
  uploaderId: "user_alice",
  receiverId: "user_bob",
  reason: "downloaded",
  removalId: "earlier",
  storagePath: "files/file_one",
  size: 300,
  deletedAt: at(-1000),
  expiresAt: at(TOMBSTONE_RETENTION_MS - 1000),
};

const PEOPLE = ["user_alice", "user_bob", "user_eve"];

describe("fileAccess", () => {
  it("when the file is live, then its two parties see it and anyone else is told it does not exist", () => {
    expect(PEOPLE.map((id) => fileAccess(id, file, undefined, NOW).kind)).toEqual(["visible", "visible", "missing"]);
  });

  it("when the file is past its expiresAt but not swept yet, then it is gone to its parties and missing to anyone else", () => {
    const expired = { ...file, expiresAt: Timestamp.fromDate(NOW) };
    expect(PEOPLE.map((id) => fileAccess(id, expired, undefined, NOW).kind)).toEqual(["gone", "gone", "missing"]);
  });

  it("when only a tombstone is left, then gone to the parties, missing to anyone else; once the tombstone's time is up, missing to all", () => {
    expect(PEOPLE.map((id) => fileAccess(id, undefined, tombstone, NOW).kind)).toEqual(["gone", "gone", "missing"]);
    const old = { ...tombstone, expiresAt: Timestamp.fromDate(NOW) }; // TTL deletion may lag: the read compares
    expect(PEOPLE.map((id) => fileAccess(id, undefined, old, NOW).kind)).toEqual(["missing", "missing", "missing"]);
  });

  it("when there is neither record nor tombstone (never existed, or deleted by its uploader), then missing to all", () => {
    expect(PEOPLE.map((id) => fileAccess(id, undefined, undefined, NOW).kind)).toEqual(["missing", "missing", "missing"]);
  });
});

describe("decideRemoval", () => {
  const candidate = (overrides: Partial<RemovalCandidate> = {}): RemovalCandidate => ({ id: "file_one", file, tombstone: undefined, ...overrides });
  const removed = { id: "file_one", uploaderId: "user_alice", receiverId: "user_bob", storagePath: "files/file_one", size: 300 };

  it("when a downloaded file is removed, then the record goes and a tombstone of its parties is kept for the retention time", () => {
    expect(decideRemoval(candidate(), { reason: "downloaded", removalId: "r1" }, NOW)).toEqual({
      kind: "remove",
      removed,
      tombstone: { ...tombstone, removalId: "r1", deletedAt: Timestamp.fromDate(NOW), expiresAt: at(TOMBSTONE_RETENTION_MS) },
    });
  });

  it("when a removal has no reason (the uploader's delete, a lost blob), then no tombstone", () => {
    expect(decideRemoval(candidate(), { removalId: "r1" }, NOW)).toEqual({ kind: "remove", removed });
  });

  it("when an expiry sweep finds a file not yet due, then it is left alone; once due, removed as expired", () => {
    expect(decideRemoval(candidate(), { reason: "expired", removalId: "r1" }, NOW)).toEqual({ kind: "skip" });
    const due = decideRemoval(candidate({ file: { ...file, expiresAt: Timestamp.fromDate(NOW) } }), { reason: "expired", removalId: "r1" }, NOW);
    expect(due).toMatchObject({ kind: "remove", removed, tombstone: { reason: "expired", removalId: "r1" } });
  });

  it("when the record is gone and the tombstone is this removal's own (an SDK retry of a committed attempt), then it is reported, not written again", () => {
    expect(decideRemoval(candidate({ file: undefined, tombstone: { ...tombstone, removalId: "r1" } }), { reason: "downloaded", removalId: "r1" }, NOW)).toEqual({
      kind: "removed",
      removed,
    });
  });

  it("when another removal got there first (a concurrent sweeper, the download), then nothing is written or reported", () => {
    expect(decideRemoval(candidate({ file: undefined, tombstone }), { reason: "expired", removalId: "r2" }, NOW)).toEqual({ kind: "skip" });
    expect(decideRemoval(candidate({ file: undefined }), { removalId: "r2" }, NOW)).toEqual({ kind: "skip" });
  });
});

describe("upload lifetime fields", () => {
  const schema = uploadFieldsSchemaFor(3600);
  const base = { receiverId: "user_bobBobBobBobBobBobBob12", filename: "a.bin", iv: "aXY=", authTag: "dGFn", signature: "c2ln" };
  const issueOf = (fields: Record<string, string>) => {
    const result = schema.safeParse({ ...base, ...fields });
    return result.success ? undefined : { field: String(result.error.issues[0]!.path[0]), message: result.error.issues[0]!.message };
  };

  it("when the fields are absent, then the longest lifetime and no delete-after-download", () => {
    const parsed = schema.parse(base);
    expect(parsed.expiresInSeconds).toBeUndefined();
    expect(parsed.deleteAfterDownload).toBeUndefined();
    expect(lifetimeMsOf(parsed.expiresInSeconds, 3600)).toBe(3_600_000);
  });

  it("when they are given as text parts, then they are numbers and booleans", () => {
    expect(schema.parse({ ...base, expiresInSeconds: "60", deleteAfterDownload: "true" })).toMatchObject({ expiresInSeconds: 60, deleteAfterDownload: true });
    expect(schema.parse({ ...base, expiresInSeconds: "3600", deleteAfterDownload: "false" })).toMatchObject({ expiresInSeconds: 3600, deleteAfterDownload: false });
    expect(lifetimeMsOf(60, 3600)).toBe(60_000);
  });

  it("when they are out of range or not what they should be, then the problem names the field", () => {
    for (const expiresInSeconds of ["59", "3601", "1.5", "-60", "", "60s", "99999999999"]) {
      expect(issueOf({ expiresInSeconds }), expiresInSeconds).toMatchObject({ field: "expiresInSeconds" });
    }
    for (const deleteAfterDownload of ["yes", "1", "TRUE", ""]) {
      expect(issueOf({ deleteAfterDownload }), deleteAfterDownload).toMatchObject({ field: "deleteAfterDownload", message: 'must be "true" or "false"' });
    }
  });
});
