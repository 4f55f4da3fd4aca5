import { z } from "zod";
import { isoTime, succeeded } from "../shared/responses";
import { idOf } from "../shared/validation";

/** A tree size or leaf index from a query string or path: a whole number. */
const wholeNumber = (min: number) =>
  z.coerce
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(min, `must be at least ${min}`)
    .max(Number.MAX_SAFE_INTEGER, "is too large");

const hash = z.string().describe("SHA-256, standard base64");

export const signedHeadSchema = z.object({
  treeSize: z.number().int().min(0).describe("Leaves in the tree"),
  rootHash: hash.describe("RFC 9162 Merkle tree hash of the first `treeSize` leaves, standard base64"),
  timestamp: isoTime().describe("When the head was signed"),
  signature: z
    .string()
    .describe("ECDSA P-256 / SHA-256 by the log key, IEEE P1363 (r || s), standard base64, over the UTF-8 bytes of JSON.stringify({ treeSize, rootHash, timestamp }) in that key order"),
});

export const headResponseSchema = succeeded(signedHeadSchema.shape);
export const logKeyResponseSchema = succeeded({
  publicKey: z.string().describe("The log key: PEM SPKI EC P-256. It never changes for a deployment: pin it in the client at build time"),
});

export const leafSchema = z
  .string()
  .describe("The leaf data: JSON.stringify({ userId, publicKey, version, timestamp }) exactly; its hash is SHA-256(0x00 || UTF-8 bytes)");

export const proofParamsSchema = z.object({ userId: idOf("user") });
export const proofQuerySchema = z.object({
  treeSize: wholeNumber(1).optional().describe("A published tree size; default the latest head"),
});
export const proofResponseSchema = succeeded({
  head: signedHeadSchema.describe("The signed head of the tree the proofs are for"),
  entries: z
    .array(
      z.object({
        leafIndex: z.number().int().min(0),
        leaf: leafSchema,
        auditPath: z.array(hash).describe("RFC 9162 inclusion proof (2.1.3.1), leaf to root"),
      }),
    )
    .describe("Every binding of the user in that tree, by leaf index: the last one is the user's current key"),
  pending: z.literal(true).optional().describe("Present while a newer binding of the user waits for the merge"),
});

export const consistencyQuerySchema = z.object({
  from: wholeNumber(1).describe("The smaller tree size (a head the client kept)"),
  to: wholeNumber(1).describe("The larger tree size, at most the latest"),
});
export const consistencyResponseSchema = succeeded({
  proof: z.array(hash).describe("RFC 9162 consistency proof (2.1.4.1); empty when from = to"),
});

export const entriesQuerySchema = z.object({
  start: wholeNumber(0).describe("First leaf index"),
  end: wholeNumber(1).describe("One past the last leaf index (end − start ≤ 1000)"),
});
export const entriesResponseSchema = succeeded({
  entries: z.array(z.object({ leafIndex: z.number().int().min(0), leaf: leafSchema })).describe("Merged leaves in [start, end), fewer at the log's end"),
});

export const headParamsSchema = z.object({ treeSize: wholeNumber(0) });
