import { z } from "zod";
import { errors } from "./errors";
import { ID_PATTERN, type IdPrefix } from "./ids";

/**
 * Parses client input with a zod schema; the first problem becomes a 400 VALIDATION_ERROR naming the
 * field. Values are never echoed back: they may be passwords, keys or ciphertext.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, source = "body"): z.infer<S> {
  let result: z.ZodSafeParseResult<z.infer<S>>;
  try {
    result = schema.safeParse(input) as z.ZodSafeParseResult<z.infer<S>>;
  } catch {
    // zod runs a string's length checks on any value with a `length` (it does not stop at the type
    // error), so `{ "email": { "length": {} } }` throws inside safeParse: found by test/security/fuzz.test.ts.
    throw errors.validation(source, `Invalid ${source}: a field has the wrong type`);
  }
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : source;
  const message = issue.path.length > 0 ? `${field}: ${issue.message}` : `Invalid ${source}: ${issue.message}`;
  throw errors.validation(field, message);
}

/** A string field whose absence says "is required" and whose wrong type says so. */
export function text() {
  return z.string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") });
}

/** Standard or URL-safe base64 with optional padding: ciphertext, ivs, tags, nonces, signatures. */
export const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Base64 text of at most `max` characters, kept exactly as sent (never decoded or re-encoded). */
export function base64Text(max: number) {
  return text()
    .min(1, "is required")
    .max(max, `must be at most ${max} characters`)
    .regex(BASE64_TEXT, "must be base64 text");
}

/** A whole number from a query string (a page's limit or offset), `fallback` when absent. */
export function queryCount(max: number, fallback: number, min = 1) {
  return z.coerce
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);
}

/** An id we minted, with the given prefix. Anything else never reaches a Firestore path. */
export function idOf(prefix: IdPrefix) {
  return text()
    .regex(ID_PATTERN, `must be a ${prefix} id`)
    .refine((value) => value.startsWith(`${prefix}_`), `must be a ${prefix} id`);
}
