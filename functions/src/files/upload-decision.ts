import { Timestamp } from "firebase-admin/firestore";
import { AppError, errors } from "../shared/errors";
import type { FileDraft, StoredFile } from "./repository";
import { FILE_PART } from "./schema";

/**
 * The rules of recording an upload and of the quota, as pure functions of what was read.
 * FileRepository reads and writes; these decide (tested without the database in test/unit/).
 */

/** The bytes of live files a user uploaded, kept beside them so the quota holds under concurrency. */
export interface FileUsage {
  bytes: number;
  files: number;
}

export function usageOf(data: unknown): FileUsage {
  const usage = data as Partial<FileUsage> | undefined;
  return { bytes: usage?.bytes ?? 0, files: usage?.files ?? 0 };
}

/** 413 QUOTA_EXCEEDED: distinct from PAYLOAD_TOO_LARGE, since a smaller file (or a deletion) helps. */
export function quotaExceeded(quotaBytes: number, usedBytes: number): AppError {
  return new AppError(
    "QUOTA_EXCEEDED",
    `This file does not fit in your storage quota (${usedBytes} of ${quotaBytes} bytes used); delete files or wait for them to expire`,
    { field: FILE_PART, quotaBytes, usedBytes },
  );
}

/** A quota already full is refused before the body is read; decideUpload is the exact check. */
export function fullQuotaRefusal(usedBytes: number, quotaBytes: number): AppError | undefined {
  return usedBytes >= quotaBytes ? quotaExceeded(quotaBytes, usedBytes) : undefined;
}

export interface UploadTerms {
  /** This file's lifetime: its `expiresInSeconds`, or FILE_TTL_DAYS (lifecycle.ts lifetimeMsOf). */
  ttlMs: number;
  quotaBytes: number;
}

/** What the recording transaction read. */
export interface UploadState {
  /** The record under the new file's id: there only when the SDK retries an attempt that committed. */
  ownCommit: StoredFile | undefined;
  receiverExists: boolean;
  /** The receiver blocks the uploader. */
  blockedByReceiver: boolean;
  usage: FileUsage;
}

export type UploadDecision =
  /** Write the record and the uploader's usage with the file counted. */
  | { kind: "store"; file: StoredFile; usage: FileUsage }
  /** Already recorded by this very upload: write nothing. */
  | { kind: "stored"; file: StoredFile }
  | { kind: "refused"; error: AppError };

/** The receiver must exist and not block the uploader, and the file must fit in the uploader's quota. */
export function decideUpload(state: UploadState, draft: FileDraft, now: Date, terms: UploadTerms): UploadDecision {
  if (state.ownCommit) return { kind: "stored", file: state.ownCommit };
  if (!state.receiverExists) return { kind: "refused", error: errors.receiverNotFound() };
  if (state.blockedByReceiver) return { kind: "refused", error: errors.blocked() };
  const { usage } = state;
  if (usage.bytes + draft.size > terms.quotaBytes) return { kind: "refused", error: quotaExceeded(terms.quotaBytes, usage.bytes) };
  const file: StoredFile = {
    ...draft,
    uploadedAt: Timestamp.fromMillis(now.getTime()),
    expiresAt: Timestamp.fromMillis(now.getTime() + terms.ttlMs),
  };
  return { kind: "store", file, usage: { bytes: usage.bytes + draft.size, files: usage.files + 1 } };
}

/** A user's usage once the given files are gone: never below zero (usage is repaired, not trusted). */
export function usageAfterRemoval(usage: FileUsage, removed: ReadonlyArray<{ size: number }>): FileUsage {
  const bytes = removed.reduce((sum, file) => sum + file.size, 0);
  return { bytes: Math.max(0, usage.bytes - bytes), files: Math.max(0, usage.files - removed.length) };
}
