import { caller } from "../shared/caller";
import { operationOf, type OperationGroup } from "../shared/operations";
import {
  exchangeParamsSchema,
  exchangeResponseSchema,
  initiateResponseSchema,
  initiateSchema,
  pendingResponseSchema,
  respondResponseSchema,
  respondSchema,
} from "./schema";
import type { KeyExchangeService } from "./service";

interface KeyExchangeRouteDeps {
  exchanges: KeyExchangeService;
}

const operation = operationOf<KeyExchangeRouteDeps>();

export const keyExchangeOperations: OperationGroup<KeyExchangeRouteDeps> = {
  prefix: "/keyexchange",
  tag: "KeyExchange",
  operations: [
    operation({
      operationId: "initiateKeyExchange",
      method: "post",
      path: "/initiate",
      summary: "Start a key exchange",
      description:
        "`signature`: ECDSA by the caller's registered key over the UTF-8 bytes of `ephemeralPublicKey` exactly as sent (SHA-256 for P-256, SHA-384 for P-384), base64 of IEEE P1363 (what Web Crypto returns) or DER. Older pending exchanges between the two users become `superseded`. The target gets `key_exchange_request`. A target who blocks the caller answers 403 BLOCKED.",
      auth: "session",
      limits: ["keyExchange"],
      body: initiateSchema,
      success: { status: 201, description: "Pending until the target responds", schema: initiateResponseSchema },
      errors: ["INVALID_SIGNATURE", "NOT_FOUND", "BLOCKED"],
      handle: ({ body, res }, { exchanges }) => exchanges.initiate(caller(res).userId, body),
    }),
    operation({
      operationId: "respondKeyExchange",
      method: "post",
      path: "/respond",
      summary: "Complete a key exchange (the target only)",
      description:
        "Signed like initiate; the ephemeral key must be on the initiator's curve. The initiator gets 403, anyone else 404. The initiator gets `key_exchange_response`.",
      auth: "session",
      limits: ["keyExchange"],
      body: respondSchema,
      success: { status: 200, description: "Completed", schema: respondResponseSchema },
      errors: ["INVALID_SIGNATURE", "FORBIDDEN", "NOT_FOUND", "EXCHANGE_NOT_PENDING", "EXCHANGE_EXPIRED"],
      handle: ({ body, res }, { exchanges }) => exchanges.respond(caller(res).userId, body),
    }),
    // Before /{exchangeId}, which would match "pending" too.
    operation({
      operationId: "listPendingKeyExchanges",
      method: "get",
      path: "/pending",
      summary: "Pending exchanges, incoming and outgoing",
      auth: "session",
      success: { status: 200, description: "Pending exchanges", schema: pendingResponseSchema },
      errors: [],
      handle: ({ res }, { exchanges }) => exchanges.pending(caller(res).userId),
    }),
    operation({
      operationId: "getKeyExchange",
      method: "get",
      path: "/{exchangeId}",
      summary: "One exchange (its two participants only)",
      auth: "session",
      params: exchangeParamsSchema,
      success: { status: 200, description: "The exchange", schema: exchangeResponseSchema },
      errors: ["NOT_FOUND"],
      handle: async ({ params, res }, { exchanges }) => ({ exchange: await exchanges.get(caller(res).userId, params.exchangeId) }),
    }),
  ],
};
