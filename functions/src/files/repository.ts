import { randomBytes } from "node:crypto";
import { Timestamp, type DocumentReference, type Firestore } from "firebase-admin/firestore";
import { COLLECTIONS } from "../shared/firestore";
import { blockRefOf } from "../users/repository";
import { decideRemoval, type FileTombstone, type RemovalReason, type RemovedFile } from "./lifecycle";
import { decideUpload, usageAfterRemoval, usageOf, type UploadTerms } from "./upload-decision";

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
  /** Deleted after the receiver's first complete download (absent on records older than the option: false). */
  deleteAfterDownload?: boolean;
}

export type FileDraft = Omit<StoredFile, "uploadedAt" | "expiresAt">;

export class FileRepository {
  private readonly files;
  private readonly usage;
  private readonly users;
  private readonly tombstones;

  constructor(private readonly db: Firestore) {
    this.files = db.collection(COLLECTIONS.files);
    this.usage = db.collection(COLLECTIONS.fileUsage);
    this.users = db.collection(COLLECTIONS.users);
    this.tombstones = db.collection(COLLECTIONS.fileTombstones);
  }

  /**
   * Records an uploaded file in one transaction with its uploader's usage, as decideUpload decides
   * (upload-decision.ts): a refusal is thrown inside the transaction, so nothing is written. Concurrent
   * uploads of one user contend on the usage document, so together they can never exceed the quota.
   */
  async create(fileId: string, draft: FileDraft, terms: UploadTerms & { now: () => Date }): Promise<StoredFile> {
    const fileRef = this.files.doc(fileId);
    const usageRef = this.usage.doc(draft.uploaderId);
    return this.db.runTransaction(async (tx) => {
      // The receiver's block of the uploader is read here, so a block that commits first refuses the file.
      const [own, receiver, usage, block] = await tx.getAll(
        fileRef,
        this.users.doc(draft.receiverId),
        usageRef,
        blockRefOf(this.db, draft.receiverId, draft.uploaderId),
      );
      const state = {
        ownCommit: own!.data() as StoredFile | undefined,
        receiverExists: receiver!.exists,
        blockedByReceiver: block!.exists,
        usage: usageOf(usage!.data()),
      };
      const decision = decideUpload(state, draft, terms.now(), terms);
      if (decision.kind === "refused") throw decision.error;
      if (decision.kind === "store") {
        tx.create(fileRef, decision.file);
        tx.set(usageRef, decision.usage);
      }
      return decision.file;
    });
  }

  /** The record and the tombstone under one id, in one round trip (at most one of them exists). */
  async findWithTombstone(fileId: string): Promise<{ file: StoredFile | undefined; tombstone: FileTombstone | undefined }> {
    const [file, tombstone] = await this.db.getAll(this.files.doc(fileId), this.tombstones.doc(fileId));
    return { file: file!.data() as StoredFile | undefined, tombstone: tombstone!.data() as FileTombstone | undefined };
  }

  async usedBytes(userId: string): Promise<number> {
    return usageOf((await this.usage.doc(userId).get()).data()).bytes;
  }

  /**
   * Deletes these records and gives their bytes back to their uploaders' usage, in one transaction, as
   * decideRemoval decides (lifecycle.ts): with a reason, only files still there (and for "expired", only
   * those past expiresAt), each leaving a tombstone. Returns what this call removed, each file once
   * across concurrent callers: the caller then removes the blobs and tells the uploaders. Up to 100 ids.
   */
  async remove(fileIds: readonly string[], now: Date, reason?: RemovalReason): Promise<RemovedFile[]> {
    if (fileIds.length === 0) return [];
    // Minted outside the retried function: an attempt that committed is recognized by its tombstones.
    const removalId = randomBytes(12).toString("base64url");
    return this.db.runTransaction(async (tx) => {
      const refs = fileIds.flatMap((id) => [this.files.doc(id), this.tombstones.doc(id)]);
      const snapshots = await tx.getAll(...refs);
      const decisions = fileIds.map((id, index) =>
        decideRemoval(
          {
            id,
            file: snapshots[2 * index]!.data() as StoredFile | undefined,
            tombstone: snapshots[2 * index + 1]!.data() as FileTombstone | undefined,
          },
          { reason, removalId },
          now,
        ),
      );
      const toRemove = decisions.flatMap((decision) => (decision.kind === "remove" ? [decision] : []));
      const byUploader = new Map<string, RemovedFile[]>();
      for (const { removed } of toRemove) byUploader.set(removed.uploaderId, [...(byUploader.get(removed.uploaderId) ?? []), removed]);
      const usageRefs: DocumentReference[] = [...byUploader.keys()].map((userId) => this.usage.doc(userId));
      const usageSnaps = usageRefs.length > 0 ? await tx.getAll(...usageRefs) : [];
      for (const { removed, tombstone } of toRemove) {
        tx.delete(this.files.doc(removed.id));
        if (tombstone) tx.create(this.tombstones.doc(removed.id), tombstone);
      }
      usageSnaps.forEach((snap, index) => {
        tx.set(usageRefs[index]!, usageAfterRemoval(usageOf(snap.data()), byUploader.get(snap.id)!));
      });
      return decisions.flatMap((decision) => (decision.kind === "skip" ? [] : [decision.removed]));
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
