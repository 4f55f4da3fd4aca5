import { pipeline } from "node:stream/promises";
import { Router, type Request, type Response } from "express";
import { caller } from "../shared/caller";
import { AppError } from "../shared/errors";
import { rateLimitHeaders } from "../shared/rate-limit";
import { parseInput } from "../shared/validation";
import { closeAfterAnswer, declaredTooLarge, fileTooLarge, isMultipartRequest, readMultipart } from "./multipart";
import { FILE_PART, fileParamsSchema, TEXT_PARTS } from "./schema";
import type { FileService } from "./service";

/** What every download answers with: opaque bytes the browser must neither render nor sniff. */
const DOWNLOAD_HEADERS = {
  "Content-Type": "application/octet-stream",
  "Content-Disposition": 'attachment; filename="encrypted_file"',
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "private, no-store",
};

/**
 * Mounted behind requireAuth and *before* the app's JSON body handling: the upload body is multipart
 * and is read here, as a stream (see app.ts).
 */
export function fileRoutes(files: FileService): Router {
  const router = Router();

  router.post("/upload", async (req, res) => {
    try {
      await upload(req, res);
    } catch (error) {
      closeAfterAnswer(req, res, files.maxBytes); // a refusal before the body's end does not wait for an unbounded rest
      throw error;
    }
  });

  async function upload(req: Request, res: Response) {
    if (!isMultipartRequest(req)) {
      throw new AppError("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be multipart/form-data");
    }
    if (declaredTooLarge(req, files.maxBytes)) throw fileTooLarge(FILE_PART, files.maxBytes);
    const spec = { fileField: FILE_PART, textFields: TEXT_PARTS, maxFileBytes: files.maxBytes };
    const { record, rateLimit } = await files.upload(caller(res).userId, (sink) => readMultipart(req, spec, sink));
    res.set(rateLimitHeaders(rateLimit));
    res.status(201).json({
      success: true,
      fileId: record.id,
      downloadUrl: record.downloadUrl,
      uploadedAt: record.uploadedAt,
      file: record,
    });
  }

  router.get("/:fileId/meta", async (req, res) => {
    const { fileId } = parseInput(fileParamsSchema, req.params, "params");
    res.json({ success: true, file: await files.metadata(caller(res).userId, fileId) });
  });

  router.get("/:fileId", async (req, res) => {
    const { fileId } = parseInput(fileParamsSchema, req.params, "params");
    const { record, body } = await files.download(caller(res).userId, fileId);
    res.status(200).set({ ...DOWNLOAD_HEADERS, "Content-Length": String(record.size) });
    try {
      await pipeline(body, res);
    } catch (error) {
      // The client went away mid-download: nothing to answer, nobody to tell.
      if ((error as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") return;
      throw error; // a storage failure: logged by the error handler, the connection is cut
    }
  });

  router.delete("/:fileId", async (req, res) => {
    const { fileId } = parseInput(fileParamsSchema, req.params, "params");
    await files.remove(caller(res).userId, fileId);
    res.json({ success: true, message: "File deleted" });
  });

  return router;
}
