import type { Exchange } from "./repository";
import type { ExchangeView, KeyExchangeRequestEvent } from "./schema";
import { statusOf } from "./state-machine";

/** An exchange as its two participants see it: its status as of `now` (a pending one may have expired). */
export function toExchangeView(exchange: Exchange, now: Date): ExchangeView {
  return {
    exchangeId: exchange.id,
    initiatorId: exchange.initiatorId,
    targetId: exchange.targetId,
    status: statusOf(exchange, now),
    initiatorEphemeralPublicKey: exchange.initiatorEphemeralPublicKey,
    initiatorSignature: exchange.initiatorSignature,
    targetEphemeralPublicKey: exchange.targetEphemeralPublicKey,
    targetSignature: exchange.targetSignature,
    createdAt: exchange.createdAt.toDate().toISOString(),
    expiresAt: exchange.expiresAt.toDate().toISOString(),
    completedAt: exchange.completedAt?.toDate().toISOString() ?? null,
  };
}

/** The guide's key_exchange_request payload (plus times), for the target. */
export function requestEvent(exchange: Exchange): KeyExchangeRequestEvent {
  return {
    exchangeId: exchange.id,
    fromUserId: exchange.initiatorId,
    ephemeralPublicKey: exchange.initiatorEphemeralPublicKey,
    signature: exchange.initiatorSignature,
    createdAt: exchange.createdAt.toDate().toISOString(),
    expiresAt: exchange.expiresAt.toDate().toISOString(),
  };
}

/** The guide's key_exchange_response payload, for the initiator. */
export function responseEvent(exchange: Exchange) {
  return {
    exchangeId: exchange.id,
    fromUserId: exchange.targetId,
    ephemeralPublicKey: exchange.targetEphemeralPublicKey,
    signature: exchange.targetSignature,
    status: "completed" as const,
  };
}
