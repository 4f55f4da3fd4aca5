import { Timestamp } from "firebase-admin/firestore";
import { canKnowFileIsGone, canSeeFile } from "../shared/policies";
import type { StoredFile } from "./repository";

/**
 * The rules of a file's end, as pure functions of what was read (tested without the database in
 * test/unit/file-lifecycle.test.ts). FileRepository reads and writes; FileService and FileCleanup act.
 *
 * A file ends in one of four ways. Two of them leave a tombstone, so that its two parties are told
 * `410 FILE_GONE` rather than a bare 404: the receiver's first complete download of a
 * delete-after-download file ("downloaded"), and its expiry ("expired"). The uploader's own delete and
 * the cleanup's removal of a record whose blob is lost leave none (404, as before).
 */

/** Why a file was deleted, as the uploader's `file_deleted` event says it. */
export type RemovalReason = "downloaded" | "expired";

/**
 * How long a tombstone keeps answering 410 to the two parties (then Firestore's TTL policy on
 * fileTombstones.expiresAt deletes it, and they get 404 like anyone else): as long as a file lives by
 * default, so a party that last looked within a file's lifetime still gets the explanation.
 */
export const TOMBSTONE_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/** What is left of a file deleted for a reason: who may be told, and enough to recognize our own commit. */
export interface FileTombstone {
  uploaderId: string;
  receiverId: string;
  reason: RemovalReason;
  /** The removal that wrote it (minted outside the transaction): a retried transaction finds its own commit. */
  removalId: string;
  /** Kept so that a retried removal, finding its own commit, still knows the blob to delete and the size freed. */
  storagePath: string;
  size: number;
  deletedAt: Timestamp;
  /** TTL (firestore.indexes.json); reads also compare it, since TTL deletion may lag by a day. */
  expiresAt: Timestamp;
}

/** A file as one caller may see it. */
export type FileAccess =
  | { kind: "visible"; file: StoredFile }
  /** 410 FILE_GONE: the caller is a party of a file deleted (or past its expiry, not yet swept). */
  | { kind: "gone" }
  /** 404: it never existed, or the caller is not a party, or it left no tombstone. */
  | { kind: "missing" };

export const isLive = (file: Pick<StoredFile, "expiresAt">, now: Date): boolean => file.expiresAt.toMillis() > now.getTime();

export function fileAccess(userId: string, file: StoredFile | undefined, tombstone: FileTombstone | undefined, now: Date): FileAccess {
  if (file) {
    if (canSeeFile(userId, file, isLive(file, now))) return { kind: "visible", file };
    // Past its expiry, before the sweep: already gone to its parties.
    return canKnowFileIsGone(userId, file) ? { kind: "gone" } : { kind: "missing" };
  }
  if (tombstone && tombstone.expiresAt.toMillis() > now.getTime() && canKnowFileIsGone(userId, tombstone)) return { kind: "gone" };
  return { kind: "missing" };
}

/** The seconds an upload asked to live, or the longest allowed; as milliseconds. */
export const lifetimeMsOf = (expiresInSeconds: number | undefined, maxSeconds: number): number => (expiresInSeconds ?? maxSeconds) * 1000;

/** What a removal transaction read about one file. */
export interface RemovalCandidate {
  id: string;
  file: StoredFile | undefined;
  tombstone: FileTombstone | undefined;
}

export interface RemovalRequest {
  /** With a reason a tombstone is written; without one (the uploader's delete, a lost blob) none is. */
  reason?: RemovalReason;
  removalId: string;
}

/** What was removed: the blob to delete, the uploader to tell. */
export interface RemovedFile {
  id: string;
  uploaderId: string;
  receiverId: string;
  storagePath: string;
  size: number;
}

export type RemovalDecision =
  /** Delete the record (and write the tombstone, if any); its size goes back to the uploader's usage. */
  | { kind: "remove"; removed: RemovedFile; tombstone?: FileTombstone }
  /** This very removal committed already (the SDK retried a committed attempt): write nothing, report it. */
  | { kind: "removed"; removed: RemovedFile }
  /** Someone else removed it, or it is not due: write nothing, report nothing. */
  | { kind: "skip" };

/**
 * One file in a removal. A file is removed by exactly one removal, so its uploader is told, and its
 * quota given back, once: concurrent removals (two sweepers, a sweep and a download) serialize on the
 * record, and only the first finds it. An expiry sweep removes only files whose time is up.
 */
export function decideRemoval(candidate: RemovalCandidate, request: RemovalRequest, now: Date): RemovalDecision {
  const { id, file, tombstone } = candidate;
  if (!file) {
    if (tombstone && tombstone.removalId === request.removalId) {
      const { uploaderId, receiverId, storagePath, size } = tombstone;
      return { kind: "removed", removed: { id, uploaderId, receiverId, storagePath, size } };
    }
    return { kind: "skip" };
  }
  if (request.reason === "expired" && isLive(file, now)) return { kind: "skip" };
  const removed: RemovedFile = { id, uploaderId: file.uploaderId, receiverId: file.receiverId, storagePath: file.storagePath, size: file.size };
  if (!request.reason) return { kind: "remove", removed };
  const written: FileTombstone = {
    uploaderId: file.uploaderId,
    receiverId: file.receiverId,
    reason: request.reason,
    removalId: request.removalId,
    storagePath: file.storagePath,
    size: file.size,
    deletedAt: Timestamp.fromMillis(now.getTime()),
    expiresAt: Timestamp.fromMillis(now.getTime() + TOMBSTONE_RETENTION_MS),
  };
  return { kind: "remove", removed, tombstone: written };
}
