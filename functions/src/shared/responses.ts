import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "./errors";

/**
 * Building blocks for the zod schemas of what the API answers. Each capability describes its responses
 * in its own schema.ts with these; the OpenAPI document (reference/) is generated from them, the typed
 * client's types are generated from that document, and the contract test checks real answers against it.
 */

/** A time the server produced with Date#toISOString (UTC, milliseconds, "Z"). */
export const isoTime = () => z.string().meta({ format: "date-time" });

/** A success body: `{ success: true, ...fields }`. */
export const succeeded = <Shape extends z.ZodRawShape>(shape: Shape) => z.object({ success: z.literal(true), ...shape });

/** The success body of an action that has nothing else to say (`{ success: true, message }`). */
export const doneResponseSchema = succeeded({ message: z.string() });

/** The envelope's inner object; also what the relay's `error` event carries. */
export const errorSchema = z.object({
  code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]).describe("Stable; the table is in docs/API.md"),
  message: z.string().describe("For people; never echoes submitted values"),
  details: z.record(z.string(), z.unknown()).optional().describe("`field` names the offending field of a validation error"),
});

/** Every failure: `{ success: false, error }`. */
export const errorEnvelopeSchema = z.object({ success: z.literal(false), error: errorSchema });
