import type { Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import type { Logger } from "../shared/logger";
import { repeatEvery } from "../shared/periodic";
import type { UserEventPublisher } from "../shared/user-events";
import { FILE_BLOB_PREFIX, fileIdOfBlobKey, type BlobStore } from "./blob-store";
import { FileRemoval } from "./removal";
import { FileRepository } from "./repository";

/** An object younger than this may belong to an upload still in flight: the sweeps leave it alone. */
export const ORPHAN_GRACE_MS = 60 * 60 * 1000;
/** Records handled per transaction (each also writes its tombstone and its uploader's usage: at most 3 writes per file). */
const BATCH_SIZE = 100;

export interface CleanupReport {
  /** Files past expiresAt (their own, or FILE_TTL_DAYS): record, usage and blob removed, tombstone written, uploader told. */
  expiredFiles: number;
  /** Blobs with no record (an upload that died between blob and record, a delete that died halfway). */
  orphanBlobs: number;
  /** Records with no blob (the blob removed behind our back): record and usage removed. */
  orphanRecords: number;
}

/**
 * The one routine that removes files: the scheduled function `cleanupFiles` runs it in production, the
 * local stack on an interval. Records go first (in a transaction with the usage they free), then blobs:
 * if a run dies in between, the blob is an orphan that the next run sweeps, and no record ever points
 * at a blob that is gone because of us (files/removal.ts). Safe to run concurrently with uploads, with
 * downloads that delete, and with itself: each expired file is removed, its quota given back and its
 * uploader told `file_deleted` "expired" by exactly one run.
 */
export class FileCleanup {
  constructor(
    private readonly files: FileRepository,
    private readonly removal: FileRemoval,
    private readonly blobs: BlobStore,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  async run(): Promise<CleanupReport> {
    const now = this.clock.now();
    const cutoff = new Date(now.getTime() - ORPHAN_GRACE_MS);
    const expiredFiles = await this.removeExpired(now);
    const blobKeys = new Set<string>();
    const orphanBlobs = await this.removeOrphanBlobs(cutoff, blobKeys);
    const orphanRecords = await this.removeOrphanRecords(cutoff, blobKeys);
    const report = { expiredFiles, orphanBlobs, orphanRecords };
    this.logger.info("file cleanup done", { ...report });
    return report;
  }

  private async removeExpired(now: Date): Promise<number> {
    let count = 0;
    for (;;) {
      const ids = await this.files.expiredIds(now, BATCH_SIZE);
      count += (await this.removal.remove(ids, "expired")).length;
      if (ids.length < BATCH_SIZE) return count;
    }
  }

  /** Lists every file blob (remembering the keys for the record sweep) and removes old ones with no record. */
  private async removeOrphanBlobs(cutoff: Date, seen: Set<string>): Promise<number> {
    let count = 0;
    let candidates: Array<{ key: string; fileId: string }> = [];
    const flush = async () => {
      const missing = new Set(await this.files.missingIds(candidates.map((blob) => blob.fileId)));
      const orphans = candidates.filter((blob) => missing.has(blob.fileId));
      await Promise.all(orphans.map((blob) => this.blobs.delete(blob.key)));
      count += orphans.length;
      candidates = [];
    };
    for await (const blob of this.blobs.list(FILE_BLOB_PREFIX)) {
      seen.add(blob.key);
      const fileId = fileIdOfBlobKey(blob.key);
      // Objects that are not file bodies of ours are not ours to delete.
      if (!fileId || blob.updatedAt.getTime() > cutoff.getTime()) continue;
      candidates.push({ key: blob.key, fileId });
      if (candidates.length === BATCH_SIZE) await flush();
    }
    await flush();
    return count;
  }

  /**
   * Records older than the grace period whose blob was not in the listing. A record is written only
   * after its blob is complete, so an old record's blob was listed unless it is really gone.
   */
  private async removeOrphanRecords(cutoff: Date, blobKeys: Set<string>): Promise<number> {
    let count = 0;
    for await (const page of this.files.uploadedBefore(cutoff, BATCH_SIZE)) {
      const orphans = page.filter((record) => !blobKeys.has(record.storagePath));
      if (orphans.length > 0) count += (await this.removal.remove(orphans.map((record) => record.id))).length;
    }
    return count;
  }
}

/**
 * For entry points that run only the cleanup (the scheduled function): no app, no configuration. `events`
 * is the relay's publisher (relay/events.ts), through which uploaders hear `file_deleted`.
 */
export function createFileCleanup(deps: { db: Firestore; blobs: BlobStore; events: UserEventPublisher; clock: Clock; logger: Logger }): FileCleanup {
  const files = new FileRepository(deps.db);
  const removal = new FileRemoval({ files, blobs: deps.blobs, events: deps.events, clock: deps.clock, logger: deps.logger });
  return new FileCleanup(files, removal, deps.blobs, deps.clock, deps.logger);
}

/** The local stack's stand-in for the scheduled function: runs the cleanup every `intervalMs`. */
export function runCleanupEvery(cleanup: FileCleanup, intervalMs: number, logger: Logger): { stop(): Promise<void> } {
  return repeatEvery(
    intervalMs,
    () => cleanup.run(),
    (error) => logger.error("file cleanup failed", { error: { name: error.name, message: error.message } }),
  );
}
