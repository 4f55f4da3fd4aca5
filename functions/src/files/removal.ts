import type { Clock } from "../shared/clock";
import type { Logger } from "../shared/logger";
import type { UserEventPublisher } from "../shared/user-events";
import type { BlobStore } from "./blob-store";
import type { RemovalReason, RemovedFile } from "./lifecycle";
import type { FileRepository } from "./repository";

export interface FileRemovalDeps {
  files: FileRepository;
  blobs: BlobStore;
  events: UserEventPublisher;
  clock: Clock;
  logger: Logger;
}

/**
 * The one way files are removed (the uploader's delete, the receiver's complete download, the cleanup's
 * sweeps): records first, in a transaction with the usage they free (and their tombstones, when removed
 * for a reason), then blobs, then the uploader's `file_deleted`. If a blob's deletion fails, the blob is
 * an orphan the cleanup sweeps later; no record ever points at a blob that is gone because of us. The
 * repository reports each file to exactly one caller, so each uploader is told once.
 */
export class FileRemoval {
  constructor(private readonly deps: FileRemovalDeps) {}

  async remove(fileIds: readonly string[], reason?: RemovalReason): Promise<RemovedFile[]> {
    const { files, blobs, clock } = this.deps;
    const removed = await files.remove(fileIds, clock.now(), reason);
    await Promise.all(removed.map((file) => Promise.all([blobs.delete(file.storagePath), reason ? this.tell(file, reason) : undefined])));
    return removed;
  }

  /** The uploader's sockets connected now (shared/user-events.ts): a failure to tell is logged, not raised. */
  private async tell(file: RemovedFile, reason: RemovalReason): Promise<void> {
    try {
      await this.deps.events.publish(file.uploaderId, "file_deleted", { fileId: file.id, reason });
    } catch (error) {
      this.deps.logger.warn("could not publish file_deleted", { fileId: file.id, error: (error as Error).message });
    }
  }
}
