import { Timestamp, type DocumentReference, type Firestore } from "firebase-admin/firestore";
import { AppError, errors } from "../shared/errors";
import { COLLECTIONS } from "../shared/firestore";
import { blockRefOf } from "../users/repository";
import type { z } from "zod";
import { FILE_PART, type fileRecordSchema } from "./schema";

/** The only door to file metadata and per-user storage usage (layout: shared/firestore.ts). */

export interface StoredFile {
  uploaderId: string;
  receiverId: string;
  /** Sanitized display name (schema.ts); never part of a path. */
  filename: string;
  size: number;
  iv: string;
  authTag: string;
  signature: string;
  /** The blob's key in the BlobStore, minted from the file id. Never leaves the server. */
  storagePath: string;
  uploadedAt: Timestamp;
  expiresAt: Timestamp;
}

export type FileDraft = Omit<StoredFile, "uploadedAt" | "expiresAt">;

/** What participants see (upload answer, GET …/meta); its schema is fileRecordSchema in schema.ts. */
export type FileRecord = z.output<typeof fileRecordSchema>;

export function toFileRecord(id: string, stored: StoredFile): FileRecord {
  return {
    id,
    fileId: id,
    filename: stored.filename,
    size: stored.size,
    iv: stored.iv,
    authTag: stored.authTag,
    signature: stored.signature,
    uploaderId: stored.uploaderId,
    receiverId: stored.receiverId,
    uploadedAt: stored.uploadedAt.toDate().toISOString(),
    expiresAt: stored.expiresAt.toDate().toISOString(),
    downloadUrl: `/api/files/${id}`,
  };
}

/** 413 QUOTA_EXCEEDED: distinct from PAYLOAD_TOO_LARGE, since a smaller file (or a deletion) helps. */
export function quotaExceeded(quotaBytes: number, usedBytes: number): AppError {
  return new AppError(
    "QUOTA_EXCEEDED",
    `This file does not fit in your storage quota (${usedBytes} of ${quotaBytes} bytes used); delete files or wait for them to expire`,
    { field: FILE_PART, quotaBytes, usedBytes },
  );
}

/** The bytes of live files a user uploaded, kept beside them so the quota holds under concurrency. */
interface FileUsage {
  bytes: number;
  files: number;
}

export interface FileTerms {
  now: () => Date;
  ttlMs: number;
  quotaBytes: number;
}

export type StoredFileWithId = StoredFile & { id: string };

export class FileRepository {
  private readonly files;
  private readonly usage;
  private readonly users;

  constructor(private readonly db: Firestore) {
    this.files = db.collection(COLLECTIONS.files);
    this.usage = db.collection(COLLECTIONS.fileUsage);
    this.users = db.collection(COLLECTIONS.users);
  }

  /**
   * Records an uploaded file in one transaction with its uploader's usage: the receiver must exist and
   * the quota must have room, else nothing is written. Concurrent uploads of one user contend on the
   * usage document, so together they can never exceed the quota.
   */
  async create(fileId: string, draft: FileDraft, terms: FileTerms): Promise<StoredFile> {
    const fileRef = this.files.doc(fileId);
    const usageRef = this.usage.doc(draft.uploaderId);
    return this.db.runTransaction(async (tx) => {
      // The receiver's block of the uploader is read here, so a block that commits first refuses the file.
      const [existing, receiver, usageSnap, block] = await tx.getAll(
        fileRef,
        this.users.doc(draft.receiverId),
        usageRef,
        blockRefOf(this.db, draft.receiverId, draft.uploaderId),
      );
      // The SDK may retry an attempt that did commit: finding our own record means it is stored.
      if (existing!.exists) return existing!.data() as StoredFile;
      if (!receiver!.exists) throw new AppError("NOT_FOUND", "Receiver not found", { field: "receiverId" });
      if (block!.exists) throw errors.blocked();
      const usage = usageOf(usageSnap!.data());
      if (usage.bytes + draft.size > terms.quotaBytes) {
        throw quotaExceeded(terms.quotaBytes, usage.bytes);
      }
      const nowMs = terms.now().getTime();
      const stored: StoredFile = {
        ...draft,
        uploadedAt: Timestamp.fromMillis(nowMs),
        expiresAt: Timestamp.fromMillis(nowMs + terms.ttlMs),
      };
      tx.create(fileRef, stored);
      tx.set(usageRef, { bytes: usage.bytes + draft.size, files: usage.files + 1 } satisfies FileUsage);
      return stored;
    });
  }

  async find(fileId: string): Promise<StoredFile | undefined> {
    const snapshot = await this.files.doc(fileId).get();
    return snapshot.exists ? (snapshot.data() as StoredFile) : undefined;
  }

  async usedBytes(userId: string): Promise<number> {
    return usageOf((await this.usage.doc(userId).get()).data()).bytes;
  }

  /**
   * Deletes these records (those that still exist) and gives their bytes back to their uploaders' usage,
   * in one transaction. Returns what was deleted: the caller then removes the blobs. Up to 200 ids.
   */
  async remove(fileIds: readonly string[]): Promise<StoredFileWithId[]> {
    if (fileIds.length === 0) return [];
    return this.db.runTransaction(async (tx) => {
      const snapshots = await tx.getAll(...fileIds.map((id) => this.files.doc(id)));
      const removed = snapshots.filter((snap) => snap.exists).map((snap) => ({ id: snap.id, ...(snap.data() as StoredFile) }));
      if (removed.length === 0) return [];
      const freed = new Map<string, { bytes: number; files: number }>();
      for (const file of removed) {
        const entry = freed.get(file.uploaderId) ?? { bytes: 0, files: 0 };
        freed.set(file.uploaderId, { bytes: entry.bytes + file.size, files: entry.files + 1 });
      }
      const usageRefs: DocumentReference[] = [...freed.keys()].map((userId) => this.usage.doc(userId));
      const usageSnaps = await tx.getAll(...usageRefs);
      for (const file of removed) tx.delete(this.files.doc(file.id));
      usageSnaps.forEach((snap, index) => {
        const usage = usageOf(snap.data());
        const gone = freed.get(snap.id)!;
        tx.set(usageRefs[index]!, {
          bytes: Math.max(0, usage.bytes - gone.bytes),
          files: Math.max(0, usage.files - gone.files),
        } satisfies FileUsage);
      });
      return removed;
    });
  }

  /** Up to `limit` ids of files whose time is up (single-field index on expiresAt). */
  async expiredIds(now: Date, limit: number): Promise<string[]> {
    const snapshot = await this.files
      .where("expiresAt", "<=", Timestamp.fromDate(now))
      .orderBy("expiresAt")
      .limit(limit)
      .select()
      .get();
    return snapshot.docs.map((doc) => doc.id);
  }

  /** Of these ids, those with no record. */
  async missingIds(fileIds: readonly string[]): Promise<string[]> {
    if (fileIds.length === 0) return [];
    const snapshots = await this.db.getAll(...fileIds.map((id) => this.files.doc(id)), { fieldMask: [] });
    return snapshots.filter((snap) => !snap.exists).map((snap) => snap.id);
  }

  /** Every record uploaded before `cutoff`, page by page: id and storagePath only. */
  async *uploadedBefore(cutoff: Date, pageSize: number): AsyncGenerator<Array<{ id: string; storagePath: string }>> {
    let query = this.files
      .where("uploadedAt", "<", Timestamp.fromDate(cutoff))
      .orderBy("uploadedAt")
      .select("storagePath", "uploadedAt") // startAfter(doc) needs the ordered field
      .limit(pageSize);
    for (;;) {
      const snapshot = await query.get();
      if (snapshot.empty) return;
      yield snapshot.docs.map((doc) => ({ id: doc.id, storagePath: String(doc.get("storagePath")) }));
      if (snapshot.size < pageSize) return;
      query = query.startAfter(snapshot.docs[snapshot.size - 1]!);
    }
  }
}

function usageOf(data: unknown): FileUsage {
  const usage = data as Partial<FileUsage> | undefined;
  return { bytes: usage?.bytes ?? 0, files: usage?.files ?? 0 };
}
