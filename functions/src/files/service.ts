import type { Readable } from "node:stream";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { canDeleteFile, canSeeFile } from "../shared/policies";
import { newId } from "../shared/ids";
import type { Logger } from "../shared/logger";
import { enforce, type FirestoreRateLimiter, type RateLimitDecision, type RateLimitPolicy } from "../shared/rate-limit";
import { fileBlobKey, type BlobStore } from "./blob-store";
import type { FileSink, ParsedForm } from "./multipart";
import { toFileRecord, type FileRecord } from "./presenters";
import type { FileRepository, StoredFile } from "./repository";
import { uploadInputOf } from "./schema";
import { fullQuotaRefusal } from "./upload-decision";

export interface FilePolicy {
  maxBytes: number;
  ttlDays: number;
  /** Bytes of live files one user may have uploaded. */
  quotaBytes: number;
  uploadRate: RateLimitPolicy;
}

/** Reads the upload form, handing its file part to the sink as it arrives (multipart.ts). */
export type FormReader = (sink: FileSink) => Promise<ParsedForm>;

const DAY_MS = 24 * 60 * 60 * 1000;

export interface FileServiceDeps {
  files: FileRepository;
  blobs: BlobStore;
  limiter: FirestoreRateLimiter;
  clock: Clock;
  logger: Logger;
  policy: FilePolicy;
}

/** Upload, metadata, download and delete of encrypted files. Only the two parties ever see a file. */
export class FileService {
  constructor(private readonly deps: FileServiceDeps) {}

  get maxBytes(): number {
    return this.deps.policy.maxBytes;
  }

  /**
   * Rate and quota first (nothing is read when either refuses), then the body streams into a blob at a
   * fresh server-minted key while the form is read, then the fields are checked and the record and the
   * uploader's usage are written in one transaction. Any refusal after the blob was started removes it.
   */
  async upload(uploaderId: string, readForm: FormReader): Promise<{ record: FileRecord; rateLimit: RateLimitDecision }> {
    const { files, blobs, limiter, clock, policy } = this.deps;
    const rateLimit = await limiter.consume(`files.upload:${uploaderId}`, policy.uploadRate);
    enforce(rateLimit);
    await this.checkQuotaNotFull(uploaderId);

    const fileId = newId("file");
    const storagePath = fileBlobKey(fileId);
    try {
      const input = uploadInputOf(await readForm((body) => blobs.write(storagePath, body)));
      if (input.receiverId === uploaderId) {
        throw errors.validation("receiverId", "receiverId: you cannot send a file to yourself");
      }
      const stored = await files.create(
        fileId,
        {
          uploaderId,
          receiverId: input.receiverId,
          filename: input.filename,
          size: input.size,
          iv: input.iv,
          authTag: input.authTag,
          signature: input.signature,
          storagePath,
        },
        { now: () => clock.now(), ttlMs: policy.ttlDays * DAY_MS, quotaBytes: policy.quotaBytes },
      );
      return { record: toFileRecord(fileId, stored), rateLimit };
    } catch (error) {
      await this.discardBlob(fileId, storagePath);
      throw error;
    }
  }

  async metadata(userId: string, fileId: string): Promise<FileRecord> {
    return toFileRecord(fileId, await this.visibleFile(userId, fileId));
  }

  /** The record and a stream of the encrypted bytes, exactly as uploaded. */
  async download(userId: string, fileId: string): Promise<{ record: FileRecord; body: Readable }> {
    const stored = await this.visibleFile(userId, fileId);
    const body = await this.deps.blobs.read(stored.storagePath);
    if (!body) {
      // A record without its blob: the cleanup's sweep removes it; to the caller it is simply gone.
      this.deps.logger.warn("file record without blob", { fileId });
      throw errors.notFound("File");
    }
    return { record: toFileRecord(fileId, stored), body };
  }

  /** The uploader deletes a file (freeing quota); the receiver may not, anyone else learns nothing. */
  async remove(userId: string, fileId: string): Promise<void> {
    const stored = await this.visibleFile(userId, fileId);
    if (!canDeleteFile(userId, stored)) throw errors.forbidden("Only the uploader can delete a file");
    const [removed] = await this.deps.files.remove([fileId]);
    if (!removed) throw errors.notFound("File");
    await this.deps.blobs.delete(removed.storagePath);
  }

  /** The file, when the caller may see it (canSeeFile); to anyone else it does not exist: 404. */
  private async visibleFile(userId: string, fileId: string): Promise<StoredFile> {
    const stored = await this.deps.files.find(fileId);
    const live = stored !== undefined && stored.expiresAt.toMillis() > this.deps.clock.now().getTime();
    if (!stored || !canSeeFile(userId, stored, live)) throw errors.notFound("File");
    return stored;
  }

  /** A quota already full is refused before the body is read; the transaction is the exact check. */
  private async checkQuotaNotFull(userId: string): Promise<void> {
    const refusal = fullQuotaRefusal(await this.deps.files.usedBytes(userId), this.deps.policy.quotaBytes);
    if (refusal) throw refusal;
  }

  private async discardBlob(fileId: string, storagePath: string): Promise<void> {
    try {
      await this.deps.blobs.delete(storagePath);
    } catch (error) {
      // The original refusal is what the client needs; the cleanup's orphan sweep removes this blob later.
      this.deps.logger.warn("could not discard an unrecorded upload", { fileId, error: (error as Error).message });
    }
  }
}
