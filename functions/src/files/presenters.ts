import type { z } from "zod";
import type { StoredFile } from "./repository";
import type { fileRecordSchema } from "./schema";

/** What participants see (upload answer, GET …/meta); its schema is fileRecordSchema in schema.ts. */
export type FileRecord = z.output<typeof fileRecordSchema>;

/** Where the file's encrypted bytes are downloaded, relative to the API's origin. */
export const downloadUrlOf = (fileId: string) => `/api/files/${fileId}`;

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
    deleteAfterDownload: stored.deleteAfterDownload === true,
    downloadUrl: downloadUrlOf(id),
  };
}
