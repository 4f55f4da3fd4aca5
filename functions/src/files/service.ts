import type { Readable } from "node:stream";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { canDeleteFile, downloadDeletesFile } from "../shared/policies";
import { newId } from "../shared/ids";
import type { Logger } from "../shared/logger";
import { enforce, type FirestoreRateLimiter, type RateLimitDecision, type RateLimitPolicy } from "../shared/rate-limit";
import { fileBlobKey, type BlobStore } from "./blob-store";
import type { FileSink, ParsedForm } from "./multipart";
import { fileAccess, lifetimeMsOf } from "./lifecycle";
import { toFileRecord, type FileRecord } from "./presenters";
import type { FileRemoval } from "./removal";
import type { FileRepository, StoredFile } from "./repository";
import { DAY_SECONDS, uploadInputOf } from "./schema";
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


export interface FileServiceDeps {
  files: FileRepository;
  removal: FileRemoval;
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
    const maxLifetimeSeconds = policy.ttlDays * DAY_SECONDS;
    try {
      const input = uploadInputOf(await readForm((body) => blobs.write(storagePath, body)), maxLifetimeSeconds);
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
          deleteAfterDownload: input.deleteAfterDownload ?? false,
        },
        { now: () => clock.now(), ttlMs: lifetimeMsOf(input.expiresInSeconds, maxLifetimeSeconds), quotaBytes: policy.quotaBytes },
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

  /**
   * The record and a stream of the encrypted bytes, exactly as uploaded. The caller calls `completed`
   * once the whole body was sent (the response finished, not closed early): the receiver's complete
   * download of a delete-after-download file deletes it.
   */
  async download(userId: string, fileId: string): Promise<{ record: FileRecord; body: Readable; completed: () => Promise<void> }> {
    const stored = await this.visibleFile(userId, fileId);
    const body = await this.deps.blobs.read(stored.storagePath);
    if (!body) {
      // A record without its blob: the cleanup's sweep removes it; to the caller it is simply gone.
      this.deps.logger.warn("file record without blob", { fileId });
      throw errors.notFound("File");
    }
    const completed = downloadDeletesFile(userId, stored) ? () => this.removeDownloaded(fileId) : async () => undefined;
    return { record: toFileRecord(fileId, stored), body, completed };
  }

  /** The uploader deletes a file (freeing quota); the receiver may not, anyone else learns nothing. */
  async remove(userId: string, fileId: string): Promise<void> {
    const stored = await this.visibleFile(userId, fileId);
    if (!canDeleteFile(userId, stored)) throw errors.forbidden("Only the uploader can delete a file");
    const [removed] = await this.deps.removal.remove([fileId]);
    if (!removed) throw errors.notFound("File");
  }

  /**
   * After the receiver's complete download: the answer is already sent, so a failure is logged, and the
   * file stays until a later complete download (or its expiry) removes it.
   */
  private async removeDownloaded(fileId: string): Promise<void> {
    try {
      await this.deps.removal.remove([fileId], "downloaded");
    } catch (error) {
      this.deps.logger.error("could not delete a downloaded file", { fileId, error: (error as Error).message });
    }
  }

  /**
   * The file, when the caller may see it (fileAccess, lifecycle.ts): to its parties a file deleted after
   * its download or at its expiry is 410 FILE_GONE; to anyone else any file they may not see is 404.
   */
  private async visibleFile(userId: string, fileId: string): Promise<StoredFile> {
    const { file, tombstone } = await this.deps.files.findWithTombstone(fileId);
    const access = fileAccess(userId, file, tombstone, this.deps.clock.now());
    if (access.kind === "gone") throw errors.fileGone();
    if (access.kind === "missing") throw errors.notFound("File");
    return access.file;
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
