import { Transform, type Readable, type TransformCallback } from "node:stream";
import busboy from "busboy";
import type { Request, Response } from "express";
import { AppError, errors } from "../shared/errors";

/**
 * multipart/form-data uploads, read with busboy and never buffered whole.
 *
 * - Local server: the request is a stream; it is piped through busboy and the file part flows on into
 *   the blob store as it arrives (backpressure reaches the socket).
 * - Cloud Functions: the platform has already read the body into `req.rawBody` (the request stream is
 *   spent, which is why multer fails there). That Buffer is handed to busboy in one piece; the file
 *   chunks busboy emits are views into it, so the file is still held only once.
 *
 * Text parts are small and collected; the one file part goes to a sink (the blob store) while the rest
 * of the form is still being read, so fields may come before or after it.
 */

export interface FormSpec {
  /** The name of the one file part. */
  fileField: string;
  /** The text parts to collect; others are ignored. */
  textFields: readonly string[];
  maxFileBytes: number;
}

export interface ParsedForm {
  fields: Record<string, string>;
  /** Size of the stored file part; undefined when the form had none. */
  fileBytes?: number;
}

/** Stores the file part as it arrives; resolves once it is durable, rejects if it failed. */
export type FileSink = (file: Readable) => Promise<void>;

const MAX_TEXT_FIELD_BYTES = 8 * 1024;
const MAX_PARTS = 16;
const MAX_HEADER_PAIRS = 16;
/** busboy's own cap on one part's header block. */
const MAX_PART_HEADER_BYTES = 16 * 1024;
/** The most a valid form can carry besides its file: every part at its limits, plus boundaries. */
export const MAX_FORM_OVERHEAD_BYTES = MAX_PARTS * (MAX_TEXT_FIELD_BYTES + MAX_PART_HEADER_BYTES + 256);

export function isMultipartRequest(req: Request): boolean {
  return req.is("multipart/form-data") === "multipart/form-data";
}

/** A body declared larger than any valid form can be is refused before a byte of it is read. */
export function declaredTooLarge(req: Request, maxFileBytes: number): boolean {
  const declared = Number(req.headers["content-length"]);
  return Number.isFinite(declared) && declared > maxFileBytes + MAX_FORM_OVERHEAD_BYTES;
}

export function fileTooLarge(field: string, maxFileBytes: number): AppError {
  return new AppError("PAYLOAD_TOO_LARGE", `${field}: the file must be at most ${maxFileBytes} bytes`, {
    field,
    maxBytes: maxFileBytes,
  });
}

const invalid = (field: string, problem: string) => errors.validation(field, `${field}: ${problem}`);
/** The client hung up mid-form: nobody will read the answer, but the handler must still finish cleanly. */
const clientGone = () =>
  errors.validation("body", "The client closed the connection before the end of the form");
const malformed = () => errors.validation("body", "Request body is not a valid multipart form");

/**
 * Reads the whole form. The first problem found (a file where text belongs, a repeated part, a malformed
 * body) is what the promise rejects with, but only once the body has been read to its end and the sink
 * has settled, so the client always gets the answer and nothing is left half-written behind it. After a
 * problem, later file parts are drained, not stored.
 *
 * A body over the size limit is the exception: reading on would only cost time and bandwidth (a chunked
 * body has no Content-Length to refuse up front). As soon as the file part passes `maxFileBytes`, or the
 * body passes the most a valid form can be, reading stops and the promise rejects once the sink has
 * settled; the body is left unread, and the route answers with `Connection: close` (closeAfterAnswer).
 */
export function readMultipart(req: Request, spec: FormSpec, sink: FileSink): Promise<ParsedForm> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        defParamCharset: "utf8",
        limits: {
          fileSize: spec.maxFileBytes + 1, // busboy flags a file that *reaches* the limit
          fieldSize: MAX_TEXT_FIELD_BYTES,
          parts: MAX_PARTS,
          headerPairs: MAX_HEADER_PAIRS,
        },
      });
    } catch {
      reject(malformed()); // e.g. no boundary parameter
      return;
    }

    const rawBody = (req as Request & { rawBody?: unknown }).rawBody;
    const preRead = Buffer.isBuffer(rawBody);
    const fields: Record<string, string> = {};
    let problem: Error | undefined;
    const fail = (error: Error) => {
      problem ??= error;
    };
    let stored: Promise<void> | undefined;
    let fileBytes: number | undefined;
    let storing: ByteCounter | undefined;

    /** Refuses the rest of the body: what was stored is removed, and the parser closes without reading on. */
    const stopReading = (error: AppError) => {
      fail(error);
      storing?.destroy(error);
      if (preRead) return; // the platform already read the whole body: nothing left to stop
      req.unpipe(parser);
      req.removeListener("data", countBody);
      req.pause();
      parser.destroy(); // brings "close", which rejects with the problem once the sink has settled
    };
    let bodyBytes = 0;
    const maxBodyBytes = spec.maxFileBytes + MAX_FORM_OVERHEAD_BYTES;
    const countBody = (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (bodyBytes > maxBodyBytes) stopReading(fileTooLarge(spec.fileField, spec.maxFileBytes));
    };

    parser.on("field", (name, value, info) => {
      if (name === spec.fileField) return fail(invalid(name, "must be a file part, not a text field"));
      if (!spec.textFields.includes(name)) return; // unknown text parts are ignored
      if (Object.hasOwn(fields, name)) return fail(invalid(name, "must appear once"));
      if (info.valueTruncated) return fail(invalid(name, "is too long"));
      fields[name] = value;
    });

    parser.on("file", (name, stream) => {
      const refusal =
        name !== spec.fileField
          ? spec.textFields.includes(name)
            ? "must be a text field, not a file"
            : "is not an expected file part"
          : stored
            ? "must appear once"
            : undefined;
      if (refusal) fail(invalid(name, refusal));
      if (problem) {
        // Not stored: drain it so the rest of the form is read. Its errors are the parser's, reported there.
        stream.on("error", () => undefined);
        stream.resume();
        return;
      }
      const counter = new ByteCounter();
      storing = counter;
      // Whatever destroys the counter (the size limit, a parser error) is already recorded by fail(); the
      // sink sees it too once it pipes from the counter, which may be after some setup (a folder, a file).
      counter.on("error", () => undefined);
      stream.on("error", (error) => counter.destroy(error));
      stream.on("limit", () => {
        const tooLarge = fileTooLarge(name, spec.maxFileBytes);
        fail(tooLarge);
        // Not from inside busboy's own write (it goes on with the part it is in): right after it.
        if (!preRead) process.nextTick(() => stopReading(tooLarge));
        stream.unpipe(counter);
        counter.destroy(tooLarge); // the sink aborts and removes what it wrote
        stream.resume(); // the rest of the part is read and dropped
      });
      stream.pipe(counter);
      stored = sink(counter).then(
        () => {
          fileBytes = counter.bytes;
        },
        (error: Error) => fail(error),
      );
    });

    const tooManyParts = () => fail(invalid("body", `a form may have at most ${MAX_PARTS} parts`));
    parser.on("partsLimit", tooManyParts);
    parser.on("error", (error: Error) => {
      fail(error instanceof AppError ? error : malformed());
      storing?.destroy(error);
      // A malformed part header is reported with a bare "error" event: busboy is not destroyed, and pipe()
      // has unpiped the request, so no "close" would ever come and the request would hang. Destroying the
      // parser brings "close" (and is a no-op when busboy already destroyed itself).
      parser.destroy();
      // The destroyed parser leaves the request unread: what is left of the body must still be read and
      // dropped (as Node does for a body nobody consumed), or the next request on this keep-alive
      // connection is never parsed and the client sees it reset.
      if (!preRead) {
        req.unpipe(parser);
        req.resume();
      }
    });
    // "close" follows both the end of the form and an error (busboy destroys itself on either).
    parser.on("close", () => {
      void (stored ?? Promise.resolve()).then(() => (problem ? reject(problem) : resolve({ fields, fileBytes })));
    });

    if (preRead) {
      parser.end(rawBody);
    } else if (req.destroyed && !req.complete) {
      parser.destroy(clientGone()); // it went away while auth and the limiter ran: no "close" is coming
    } else {
      req.on("error", () => parser.destroy(clientGone()));
      req.on("close", () => {
        if (!req.complete) parser.destroy(clientGone());
      });
      req.on("data", countBody);
      req.pipe(parser);
    }
  });
}

/**
 * When an upload is refused before its body was read to the end (a broken form, too large, over the
 * rate or the quota). A body whose declared length is within the limit is read and dropped, so its
 * keep-alive connection serves the next request. Any other (chunked, or declared too large) is not
 * read on: the answer says `Connection: close`, and once it is sent the connection closes (Node
 * destroys the socket after a `Connection: close` response).
 */
export function closeAfterAnswer(req: Request, res: Response, maxFileBytes: number): void {
  if (req.complete || (req as Request & { rawBody?: unknown }).rawBody !== undefined) return;
  req.unpipe();
  if (Number.isFinite(Number(req.headers["content-length"])) && !declaredTooLarge(req, maxFileBytes)) {
    req.resume();
    return;
  }
  req.pause();
  res.set("Connection", "close");
  res.once("finish", () => req.socket.destroySoon());
}

/** A pass-through that counts what flows through it: the stored file's size. */
class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    done(null, chunk);
  }
}
