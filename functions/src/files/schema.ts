import { z } from "zod";
import { errors } from "../shared/errors";
import { doneResponseSchema, isoTime, succeeded } from "../shared/responses";
import { base64Text, idOf, parseInput, text } from "../shared/validation";
import type { ParsedForm } from "./multipart";

/** The upload form, part names as the guide shows them. */
export const FILE_PART = "encryptedData";
export const TEXT_PARTS = ["receiverId", "filename", "iv", "authTag", "signature", "expiresInSeconds", "deleteAfterDownload"] as const;

/** The shortest lifetime a file may ask for. */
export const MIN_FILE_LIFETIME_SECONDS = 60;
export const DAY_SECONDS = 24 * 60 * 60;
/** The longest lifetime by default: FILE_TTL_DAYS's default (config.ts), which is what the document shows. */
export const DEFAULT_MAX_FILE_LIFETIME_SECONDS = 30 * DAY_SECONDS;

/** Longest name kept: what file systems allow for one name (255), counted in characters. */
export const MAX_FILENAME_LENGTH = 255;
/** Longest name accepted before sanitizing (a browser sends at most a path's worth). */
const MAX_RAW_FILENAME_LENGTH = 1024;

// C0 and C1 controls (NUL, CR, LF, ESC, ...) and DEL.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;
// Invisible and direction-changing characters: "invoice\u202Efdp.exe" would display as "invoiceexe.pdf".
const INVISIBLE_CHARACTERS = /[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]/g;

/**
 * The original filename is display metadata for the receiver, never a path: control and invisible
 * characters are removed, and only the last segment of anything path-like is kept (as browsers do:
 * "C:\\Users\\me\\a.pdf" and "../../a.pdf" are both "a.pdf"). A name that is nothing but dots and
 * spaces is no name at all.
 */
export function sanitizeFilename(raw: string): string {
  const cleaned = raw.normalize("NFC").replace(CONTROL_CHARACTERS, "").replace(INVISIBLE_CHARACTERS, "");
  const lastSegment = cleaned.split(/[/\\]/).pop() ?? "";
  const name = lastSegment.trim();
  return /^[.\s]*$/.test(name) ? "" : name;
}

const filename = text()
  .min(1, "is required")
  .max(MAX_RAW_FILENAME_LENGTH, `must be at most ${MAX_RAW_FILENAME_LENGTH} characters`)
  .transform(sanitizeFilename)
  .refine((name) => name.length > 0, "must contain a file name")
  .refine((name) => name.length <= MAX_FILENAME_LENGTH, `must be at most ${MAX_FILENAME_LENGTH} characters`);

/** A whole number of seconds from a text part, `min` to `max`. */
const lifetimeSeconds = (max: number) =>
  text()
    .regex(/^[0-9]{1,10}$/, "must be a whole number of seconds")
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(MIN_FILE_LIFETIME_SECONDS, `must be at least ${MIN_FILE_LIFETIME_SECONDS}`)
        .max(max, `must be at most ${max} (FILE_TTL_DAYS)`),
    );

/**
 * The upload's text parts. `maxLifetimeSeconds` is the server's FILE_TTL_DAYS in seconds: the one
 * schema is made for it (uploadInputOf), and for the document with FILE_TTL_DAYS's default.
 */
export function uploadFieldsSchemaFor(maxLifetimeSeconds: number) {
  return z.object({
    receiverId: idOf("user"),
    filename,
    iv: base64Text(64),
    authTag: base64Text(64),
    signature: base64Text(1024),
    expiresInSeconds: lifetimeSeconds(maxLifetimeSeconds)
      .optional()
      .describe(
        `Seconds the file lives after upload, ${MIN_FILE_LIFETIME_SECONDS} to FILE_TTL_DAYS (30 days by default, the default here too); then it answers 410 FILE_GONE to both parties`,
      ),
    deleteAfterDownload: z
      .enum(["true", "false"], { error: 'must be "true" or "false"' })
      .transform((value) => value === "true")
      .optional()
      .describe("`true`: deleted once the receiver has downloaded the whole body once (a broken download does not count); default `false`"),
  });
}

export const uploadFieldsSchema = uploadFieldsSchemaFor(DEFAULT_MAX_FILE_LIFETIME_SECONDS);

const schemasByMax = new Map<number, typeof uploadFieldsSchema>([[DEFAULT_MAX_FILE_LIFETIME_SECONDS, uploadFieldsSchema]]);
const uploadFieldsSchemaOf = (maxLifetimeSeconds: number) => {
  let schema = schemasByMax.get(maxLifetimeSeconds);
  if (!schema) schemasByMax.set(maxLifetimeSeconds, (schema = uploadFieldsSchemaFor(maxLifetimeSeconds)));
  return schema;
};

export type UploadInput = z.infer<typeof uploadFieldsSchema> & { size: number };

/** The form's text parts, then its file part: every problem is a 400 naming the part. */
export function uploadInputOf(form: ParsedForm, maxLifetimeSeconds: number): UploadInput {
  const fields = parseInput(uploadFieldsSchemaOf(maxLifetimeSeconds), form.fields);
  if (form.fileBytes === undefined) {
    throw errors.validation(FILE_PART, `${FILE_PART}: is required (a file part)`);
  }
  if (form.fileBytes === 0) {
    throw errors.validation(FILE_PART, `${FILE_PART}: must not be empty`);
  }
  return { ...fields, size: form.fileBytes };
}

export const fileParamsSchema = z.object({ fileId: idOf("file") });

// Responses.
/** A file as its two parties see it (the upload answer, GET /files/:fileId/meta). */
export const fileRecordSchema = z.object({
  id: idOf("file"),
  fileId: idOf("file").describe("The same value as `id`"),
  filename: z.string().describe("The original name, sanitized; display metadata only"),
  size: z.number().int().min(1).describe("Bytes of the encrypted file as stored"),
  iv: z.string().describe("Exactly as sent"),
  authTag: z.string().describe("Exactly as sent"),
  signature: z.string().describe("Exactly as sent"),
  uploaderId: idOf("user").describe("Always the authenticated uploader"),
  receiverId: idOf("user"),
  uploadedAt: isoTime(),
  expiresAt: isoTime().describe("From then on 410 FILE_GONE; uploadedAt + expiresInSeconds (default FILE_TTL_DAYS)"),
  deleteAfterDownload: z.boolean().describe("Deleted once the receiver has downloaded the whole body once"),
  downloadUrl: z.string().describe("/api/files/<fileId>"),
});

export const uploadResponseSchema = succeeded({
  fileId: idOf("file"),
  downloadUrl: z.string(),
  uploadedAt: isoTime(),
  file: fileRecordSchema,
});
export const fileMetaResponseSchema = succeeded({ file: fileRecordSchema });
export const deleteFileResponseSchema = doneResponseSchema;
