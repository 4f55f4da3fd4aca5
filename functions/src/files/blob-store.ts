import type { Readable } from "node:stream";
import { AppError } from "../shared/errors";
import { isIdOf } from "../shared/ids";

/**
 * Where encrypted file bodies live: Cloud Storage (gcs-blob-store.ts), in production and, through
 * firebase-tools' Storage emulator (local/storage-emulator.ts), in the local stack and in tests: one code
 * path everywhere. Metadata lives in Firestore (repository.ts); the
 * two are joined by a key the server mints from the file id, never from anything the client sent.
 */
export interface BlobInfo {
  key: string;
  size: number;
  /** When the object was last written: a sweep leaves younger objects alone (their upload may be in flight). */
  updatedAt: Date;
}

export interface BlobStore {
  /**
   * Streams `source` into a new private object at `key`. Never overwrites: an existing key is an error.
   * On any failure (the source errors or is destroyed, the store refuses) nothing is left at `key`.
   */
  write(key: string, source: Readable): Promise<void>;
  /** The object's bytes, or undefined when there is none: a missing object is known before a byte is sent. */
  read(key: string): Promise<Readable | undefined>;
  /** Removes the object; removing one that is not there is not an error. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<BlobInfo>;
}

/** Keys are server-minted: slash-separated segments of URL-safe characters, no dots, so never "..". */
const KEY_PATTERN = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

export function assertBlobKey(key: string): void {
  if (!KEY_PATTERN.test(key)) throw new Error(`Invalid blob key: ${JSON.stringify(key)}`);
}

/** A prefix is a key with a trailing slash (or empty: everything). */
export function assertBlobPrefix(prefix: string): void {
  if (prefix !== "" && !KEY_PATTERN.test(prefix.replace(/\/$/, ""))) {
    throw new Error(`Invalid blob prefix: ${JSON.stringify(prefix)}`);
  }
}

/** The store an app gets when its entry point supplied none: every file operation answers 503. */
export const unconfiguredBlobStore: BlobStore = {
  write: unavailable,
  read: unavailable,
  delete: unavailable,
  async *list(): AsyncGenerator<BlobInfo> {
    unavailable();
  },
};

function unavailable(): never {
  throw new AppError("SERVICE_UNAVAILABLE", "File storage is not configured on this server");
}

/** Where a file's body goes: derived from the server-minted file id only, never from the filename. */
export const FILE_BLOB_PREFIX = "files/";

export function fileBlobKey(fileId: string): string {
  return FILE_BLOB_PREFIX + fileId;
}

/** The file id a blob key belongs to, or undefined for an object that is not a file body of ours. */
export function fileIdOfBlobKey(key: string): string | undefined {
  const fileId = key.startsWith(FILE_BLOB_PREFIX) ? key.slice(FILE_BLOB_PREFIX.length) : "";
  return isIdOf("file", fileId) ? fileId : undefined;
}
