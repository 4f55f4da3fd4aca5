import { pipeline } from "node:stream/promises";
import type { Request, Response } from "express";
import { caller } from "../shared/caller";
import { AppError } from "../shared/errors";
import { operationOf, RATE_LIMIT_HEADERS, type OperationGroup } from "../shared/operations";
import { rateLimitHeaders } from "../shared/rate-limit";
import { closeAfterAnswer, declaredTooLarge, fileTooLarge, isMultipartRequest, readMultipart } from "./multipart";
import { deleteFileResponseSchema, FILE_PART, fileMetaResponseSchema, fileParamsSchema, TEXT_PARTS, uploadFieldsSchema, uploadResponseSchema } from "./schema";
import type { FileService } from "./service";

interface FileRouteDeps {
  files: FileService;
}

/** What every download answers with: opaque bytes the browser must neither render nor sniff. */
const DOWNLOAD_HEADERS = {
  "Content-Type": "application/octet-stream",
  "Content-Disposition": 'attachment; filename="encrypted_file"',
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "private, no-store",
};

const operation = operationOf<FileRouteDeps>();

/**
 * Mounted *before* the app's JSON body handling (see app.ts): the upload body is multipart and is read
 * by its handler, as a stream.
 */
export const fileOperations: OperationGroup<FileRouteDeps> = {
  prefix: "/files",
  tag: "Files",
  operations: [
    operation({
      operationId: "uploadFile",
      method: "post",
      path: "/upload",
      summary: "Upload an encrypted file",
      description:
        "multipart/form-data, parts in any order. Optional `expiresInSeconds` (60 to FILE_TTL_DAYS, default FILE_TTL_DAYS) and `deleteAfterDownload` (`true`/`false`) make a file that cleans itself up; its uploader hears `file_deleted` when it goes. Files over FILE_MAX_BYTES (25 MiB) are 413 PAYLOAD_TOO_LARGE; over the uploader's quota 413 QUOTA_EXCEEDED; 30 uploads per user per hour. The filename is sanitized (control and invisible characters removed, last path segment kept), never refused for that. A receiver who blocks the uploader answers 403 BLOCKED (nothing is kept).",
      // Its rate is taken inside the flow (files/service.ts), once the body is known to be acceptable.
      auth: "session",
      multipart: {
        fields: uploadFieldsSchema,
        filePart: FILE_PART,
        fileDescription: "The ciphertext (a Blob in FormData); not empty. Its own filename and content type are ignored.",
      },
      success: { status: 201, description: "Stored", schema: uploadResponseSchema, headers: RATE_LIMIT_HEADERS },
      errors: ["NOT_FOUND", "BLOCKED", "QUOTA_EXCEEDED", "RATE_LIMITED", "SERVICE_UNAVAILABLE"],
      handle: async ({ req, res }, { files }) => {
        try {
          return await upload(req, res, files);
        } catch (error) {
          closeAfterAnswer(req, res, files.maxBytes); // a refusal before the body's end does not wait for an unbounded rest
          throw error;
        }
      },
    }),
    operation({
      operationId: "downloadFile",
      method: "get",
      path: "/{fileId}",
      summary: "Download the encrypted bytes",
      description:
        "Exactly as uploaded, as `application/octet-stream` with `Content-Disposition: attachment`. Decrypt with the record's `iv` and `authTag`. 404 for anyone but the uploader and the receiver. To those two, 410 FILE_GONE once the file was deleted after its download or has expired. The receiver's first complete download (the whole body sent; a broken one does not count) deletes a `deleteAfterDownload` file.",
      auth: "session",
      params: fileParamsSchema,
      success: { status: 200, description: "The ciphertext", binary: true },
      errors: ["NOT_FOUND", "FILE_GONE", "SERVICE_UNAVAILABLE"],
      handle: async ({ params, req, res }, { files }) => {
        const { record, body, completed } = await files.download(caller(res).userId, params.fileId);
        res.status(200).set({ ...DOWNLOAD_HEADERS, "Content-Length": String(record.size) });
        try {
          // Settles on the response's "finish" (every byte handed to the connection) or its "close"
          // before that (the client went away mid-body: ERR_STREAM_PREMATURE_CLOSE).
          await pipeline(body, res);
        } catch (error) {
          // The client went away mid-download: nothing to answer, nobody to tell, and the download does
          // not count (a delete-after-download file stays).
          if ((error as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") return;
          throw error; // a storage failure: logged by the error handler, the connection is cut
        }
        // The whole body went out: the receiver's first complete download deletes a delete-after-download
        // file. Express answers HEAD with this handler too, sending no body: that is no download.
        if (req.method === "GET") await completed();
      },
    }),
    operation({
      operationId: "getFileMeta",
      method: "get",
      path: "/{fileId}/meta",
      summary: "A file's record",
      auth: "session",
      params: fileParamsSchema,
      description: "404 for anyone but the uploader and the receiver; to those two, 410 FILE_GONE once the file was deleted after its download or has expired.",
      success: { status: 200, description: "The record", schema: fileMetaResponseSchema },
      errors: ["NOT_FOUND", "FILE_GONE", "SERVICE_UNAVAILABLE"],
      handle: async ({ params, res }, { files }) => ({ file: await files.metadata(caller(res).userId, params.fileId) }),
    }),
    operation({
      operationId: "deleteFile",
      method: "delete",
      path: "/{fileId}",
      summary: "Delete a file (the uploader only)",
      description: "Gives its bytes back to the uploader's quota. The receiver gets 403, anyone else 404; both parties 410 FILE_GONE for a file already deleted after its download or expired.",
      auth: "session",
      params: fileParamsSchema,
      success: { status: 200, description: "Deleted", schema: deleteFileResponseSchema },
      errors: ["FORBIDDEN", "NOT_FOUND", "FILE_GONE", "SERVICE_UNAVAILABLE"],
      handle: async ({ params, res }, { files }) => {
        await files.remove(caller(res).userId, params.fileId);
        return { message: "File deleted" };
      },
    }),
  ],
};

async function upload(req: Request, res: Response, files: FileService) {
  if (!isMultipartRequest(req)) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be multipart/form-data");
  }
  if (declaredTooLarge(req, files.maxBytes)) throw fileTooLarge(FILE_PART, files.maxBytes);
  const spec = { fileField: FILE_PART, textFields: TEXT_PARTS, maxFileBytes: files.maxBytes };
  const { record, rateLimit } = await files.upload(caller(res).userId, (sink) => readMultipart(req, spec, sink));
  res.set(rateLimitHeaders(rateLimit));
  return { fileId: record.id, downloadUrl: record.downloadUrl, uploadedAt: record.uploadedAt, file: record };
}
