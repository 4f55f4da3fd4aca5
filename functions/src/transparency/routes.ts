import { operationOf, type OperationGroup } from "../shared/operations";
import {
  consistencyQuerySchema,
  consistencyResponseSchema,
  entriesQuerySchema,
  entriesResponseSchema,
  headParamsSchema,
  headResponseSchema,
  logKeyResponseSchema,
  proofParamsSchema,
  proofQuerySchema,
  proofResponseSchema,
} from "./schema";
import type { TransparencyService } from "./service";

interface TransparencyRouteDeps {
  transparency: TransparencyService;
}

const operation = operationOf<TransparencyRouteDeps>();

export const transparencyOperations: OperationGroup<TransparencyRouteDeps> = {
  prefix: "/transparency",
  tag: "Transparency",
  operations: [
    operation({
      operationId: "getTransparencyHead",
      method: "get",
      path: "/head",
      summary: "The latest signed tree head",
      description:
        "Verify `signature` with the pinned log key, then keep the head: consistency from it (GET /transparency/consistency) proves any later head extends it. Before the first binding is merged: the empty tree (size 0), signed now.",
      auth: "public",
      success: { status: 200, description: "The latest signed tree head", schema: headResponseSchema },
      errors: [],
      handle: ({}, { transparency }) => transparency.head(),
    }),
    operation({
      operationId: "getTransparencyKey",
      method: "get",
      path: "/key",
      summary: "The log's public key",
      description: "Never changes for a deployment. Pin it at build time rather than trusting this answer at run time.",
      auth: "public",
      success: { status: 200, description: "The log key", schema: logKeyResponseSchema },
      errors: [],
      handle: async ({}, { transparency }) => ({ publicKey: transparency.publicKey }),
    }),
    operation({
      operationId: "getTransparencyProof",
      method: "get",
      path: "/proof/{userId}",
      summary: "Every binding of a user, with inclusion proofs",
      description:
        "Each entry's `auditPath` proves its leaf is in the tree of `head` (RFC 9162 2.1.3). The last entry is the user's current key; `pending: true` while a newer one waits for the merge (at most a few seconds). An unknown user has no entries. `treeSize` must be a size a head was published for (404 otherwise).",
      auth: "session",
      params: proofParamsSchema,
      query: proofQuerySchema,
      success: { status: 200, description: "The user's entries and the head they are proven against", schema: proofResponseSchema },
      errors: ["NOT_FOUND"],
      handle: ({ params, query }, { transparency }) => transparency.proof(params.userId, query.treeSize),
    }),
    operation({
      operationId: "getTransparencyConsistency",
      method: "get",
      path: "/consistency",
      summary: "A consistency proof between two tree sizes",
      description: "RFC 9162 2.1.4: proves the tree of `to` leaves extends the tree of `from` leaves. `1 ≤ from ≤ to ≤` the latest size, else 400.",
      auth: "public",
      query: consistencyQuerySchema,
      success: { status: 200, description: "The proof", schema: consistencyResponseSchema },
      errors: [],
      handle: ({ query }, { transparency }) => transparency.consistency(query.from, query.to),
    }),
    operation({
      operationId: "listTransparencyEntries",
      method: "get",
      path: "/entries",
      summary: "The log's leaves, a page at a time",
      description: "Leaves `[start, end)` (end exclusive, `end − start ≤ 1000`), each with its index: what a monitor downloads to recompute the tree.",
      auth: "public",
      query: entriesQuerySchema,
      success: { status: 200, description: "The leaves", schema: entriesResponseSchema },
      errors: [],
      handle: ({ query }, { transparency }) => transparency.entries(query.start, query.end),
    }),
    operation({
      operationId: "getTransparencyHeadAt",
      method: "get",
      path: "/heads/{treeSize}",
      summary: "The signed head published for a tree size",
      description: "Every head ever published is kept. Not every size has one (bindings are merged in batches): 404 for a size that was never published.",
      auth: "public",
      params: headParamsSchema,
      success: { status: 200, description: "That signed head", schema: headResponseSchema },
      errors: ["NOT_FOUND"],
      handle: ({ params }, { transparency }) => transparency.headAt(params.treeSize),
    }),
  ],
};
