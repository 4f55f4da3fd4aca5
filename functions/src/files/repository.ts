import { Timestamp, type DocumentReference, type Firestore } from "firebase-admin/firestore";
import { COLLECTIONS } from "../shared/firestore";
import { blockRefOf } from "../users/repository";
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
}

export type FileDraft = Omit<StoredFile, "uploadedAt" | "expiresAt">;

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
      const byUploader = new Map<string, StoredFileWithId[]>();
      for (const file of removed) byUploader.set(file.uploaderId, [...(byUploader.get(file.uploaderId) ?? []), file]);
      const usageRefs: DocumentReference[] = [...byUploader.keys()].map((userId) => this.usage.doc(userId));
      const usageSnaps = await tx.getAll(...usageRefs);
      for (const file of removed) tx.delete(this.files.doc(file.id));
      usageSnaps.forEach((snap, index) => {
        tx.set(usageRefs[index]!, usageAfterRemoval(usageOf(snap.data()), byUploader.get(snap.id)!));
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
