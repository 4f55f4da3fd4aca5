import { Timestamp } from "firebase-admin/firestore";
import { AppError, errors } from "../shared/errors";
import { conversationIdOf } from "../shared/ids";
import { parseEcPublicKeyPem } from "../shared/keys";
import { canRespondToExchange, canSeeExchange } from "../shared/policies";
import type { Exchange, ExchangeStatus, StoredExchange } from "./repository";
import type { InitiateInput } from "./schema";

/**
 * An exchange's life, as pure functions: started `pending`; a newer one between the same pair makes it
 * `superseded` (KeyExchangeRepository.create); the target's response makes it `completed`; a pending one
 * past its expiry reads as `expired` and can no longer be answered. Tested without the database in
 * test/unit/.
 */

export interface ExchangeResponse {
  targetEphemeralPublicKey: string;
  targetSignature: string;
  completedAt: Date;
}

export type ResponseDecision =
  /** Write the response: the exchange becomes `completed`. */
  | { kind: "complete"; update: Pick<StoredExchange, "status" | "targetEphemeralPublicKey" | "targetSignature" | "completedAt"> }
  /** Already completed by this very response (an SDK retry of a committed attempt): write nothing. */
  | { kind: "completed" }
  | { kind: "refused"; error: AppError };

export function statusOf(exchange: StoredExchange, now: Date): ExchangeStatus {
  if (exchange.status === "pending" && exchange.expiresAt.toMillis() <= now.getTime()) return "expired";
  return exchange.status;
}

/** A new exchange, pending until `ttlSeconds` from now. */
export function startExchange(initiatorId: string, input: InitiateInput, now: Date, ttlSeconds: number): StoredExchange {
  return {
    initiatorId,
    targetId: input.targetUserId,
    pairKey: conversationIdOf(initiatorId, input.targetUserId),
    status: "pending",
    initiatorEphemeralPublicKey: input.ephemeralPublicKey,
    initiatorSignature: input.signature,
    targetEphemeralPublicKey: null,
    targetSignature: null,
    createdAt: Timestamp.fromDate(now),
    expiresAt: Timestamp.fromMillis(now.getTime() + ttlSeconds * 1000),
    completedAt: null,
    supersededBy: null,
    requestDeliveredAt: null,
    responseDeliveredAt: null,
  };
}

/**
 * The target's response to an exchange (undefined: none with that id): only the target may answer, only
 * a pending exchange, and only with a key on the initiator's curve. To anyone but the two participants
 * the exchange does not exist.
 */
export function decideResponse(exchange: Exchange | undefined, responderId: string, response: ExchangeResponse): ResponseDecision {
  const refuse = (error: AppError) => ({ kind: "refused" as const, error });
  if (!exchange) return refuse(errors.exchangeNotFound());
  // A retry of our own committed attempt finds exactly our response stored.
  if (
    exchange.status === "completed" &&
    exchange.targetSignature === response.targetSignature &&
    exchange.completedAt?.toMillis() === response.completedAt.getTime()
  ) {
    return { kind: "completed" };
  }
  if (!canSeeExchange(responderId, exchange)) return refuse(errors.exchangeNotFound());
  if (!canRespondToExchange(responderId, exchange)) return refuse(new AppError("FORBIDDEN", "Only the target of a key exchange can respond"));
  const status = statusOf(exchange, response.completedAt);
  if (status === "expired") return refuse(new AppError("EXCHANGE_EXPIRED", "This key exchange has expired; start a new one", { status }));
  if (status !== "pending") return refuse(new AppError("EXCHANGE_NOT_PENDING", `This key exchange is ${status}`, { status }));
  const initiatorCurve = parseEcPublicKeyPem(exchange.initiatorEphemeralPublicKey)?.curve;
  if (initiatorCurve !== parseEcPublicKeyPem(response.targetEphemeralPublicKey)?.curve) {
    return refuse(
      new AppError("VALIDATION_ERROR", `ephemeralPublicKey must be on ${initiatorCurve}, like the initiator's`, { field: "ephemeralPublicKey" }),
    );
  }
  return {
    kind: "complete",
    update: {
      status: "completed",
      targetEphemeralPublicKey: response.targetEphemeralPublicKey,
      targetSignature: response.targetSignature,
      completedAt: Timestamp.fromDate(response.completedAt),
    },
  };
}
