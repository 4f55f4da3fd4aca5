import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Storage } from "firebase-admin/storage";
import { assertBlobKey, assertBlobPrefix, type BlobInfo, type BlobStore } from "./blob-store";

export type Bucket = ReturnType<Storage["bucket"]>;

/** Objects listed per page when sweeping. */
const LIST_PAGE_SIZE = 1000;

/**
 * Blobs as Cloud Storage objects, through the Admin SDK (`getStorage().bucket()`). Objects are private:
 * no ACL is set (the bucket's IAM applies; storage.rules refuses every client), no public or signed URL is
 * ever made. Bodies leave only through GET /api/files/:fileId.
 */
export class GcsBlobStore implements BlobStore {
  private resolved: Bucket | undefined;

  /**
   * `bucket` is asked for on first use: `getStorage().bucket()` throws when the project has no default
   * bucket, and that should fail the file endpoints, not the start of the whole API.
   */
  constructor(private readonly getBucket: () => Bucket) {}

  private get bucket(): Bucket {
    return (this.resolved ??= this.getBucket());
  }

  async write(key: string, source: Readable): Promise<void> {
    assertBlobKey(key);
    const file = this.bucket.file(key);
    const sink = file.createWriteStream({
      // One request (a file is at most a few tens of MiB, and a Cloud Function's request at most 32 MB):
      // nothing is created unless it completes, and no resumable session is left behind on failure.
      resumable: false,
      contentType: "application/octet-stream",
      metadata: { cacheControl: "private, no-store" },
      // Generation 0 means "only if no object exists": a key is never overwritten.
      preconditionOpts: { ifGenerationMatch: 0 },
      validation: "crc32c",
    });
    // A single-request upload that fails or is aborted (the sink destroyed by pipeline) creates no object.
    await pipeline(source, sink);
  }

  async read(key: string): Promise<Readable | undefined> {
    assertBlobKey(key);
    const file = this.bucket.file(key);
    // createReadStream only reports a missing object once it is being read, after the response headers
    // would be sent. Asking first costs one metadata call and lets the caller answer a clean 404.
    const [exists] = await file.exists();
    return exists ? file.createReadStream({ validation: "crc32c" }) : undefined;
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    await this.bucket.file(key).delete({ ignoreNotFound: true });
  }

  async *list(prefix: string): AsyncGenerator<BlobInfo> {
    assertBlobPrefix(prefix);
    let pageToken: string | undefined;
    do {
      const [files, next] = await this.bucket.getFiles({ prefix, autoPaginate: false, maxResults: LIST_PAGE_SIZE, pageToken });
      for (const file of files) {
        const { size, updated, timeCreated } = file.metadata;
        yield { key: file.name, size: Number(size ?? 0), updatedAt: new Date(updated ?? timeCreated ?? 0) };
      }
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
    } while (pageToken);
  }
}
