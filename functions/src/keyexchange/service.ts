import { Timestamp } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import { conversationIdOf, newId } from "../shared/ids";
import { parseEcPublicKeyPem, type EcPublicKey } from "../shared/keys";
import type { UserEventPublisher } from "../shared/user-events";
import type { UserRepository } from "../users/repository";
import type { Exchange, ExchangeStatus, KeyExchangeRepository } from "./repository";
import type { ExchangeView, InitiateInput, KeyExchangeRequestEvent, RespondInput } from "./schema";
import { verifySignature } from "./signatures";

/**
 * Two users agree on a session key by ECDH over ephemeral keys, each signed with the signer's
 * registered identity key. The server checks the signatures, keeps the state until the exchange is
 * finished (so a reconnecting client can finish it), and hands the request and the response to the
 * relay. It never sees a private key or the derived key.
 */
export class KeyExchangeService {
  constructor(
    private readonly exchanges: KeyExchangeRepository,
    private readonly users: UserRepository,
    private readonly events: UserEventPublisher,
    private readonly clock: Clock,
    private readonly ttlSeconds: number,
  ) {}

  private async identityKeyOf(userId: string): Promise<EcPublicKey> {
    const user = await this.users.findById(userId);
    const key = user && parseEcPublicKeyPem(user.publicKey);
    if (!key) throw new AppError("UNAUTHORIZED", "Your account has no usable identity key");
    return key;
  }

  private async checkSignature(userId: string, ephemeralPublicKey: string, signature: string): Promise<void> {
    const identity = await this.identityKeyOf(userId);
    if (!verifySignature(identity.key, identity.curve, ephemeralPublicKey, signature)) {
      throw new AppError(
        "INVALID_SIGNATURE",
        `signature does not verify: ECDSA ${identity.curve === "P-256" ? "SHA-256" : "SHA-384"} by your registered key over ephemeralPublicKey`,
        { field: "signature" },
      );
    }
  }

  async initiate(initiatorId: string, input: InitiateInput) {
    if (input.targetUserId === initiatorId) {
      throw errors.validation("targetUserId", "targetUserId: you cannot exchange keys with yourself");
    }
    if (!(await this.users.findById(input.targetUserId))) {
      throw new AppError("NOT_FOUND", "Target user not found", { field: "targetUserId" });
    }
    if (await this.users.isBlocking(input.targetUserId, initiatorId)) throw errors.blocked();
    await this.checkSignature(initiatorId, input.ephemeralPublicKey, input.signature);

    const id = newId("exchange");
    const now = this.clock.now();
    const exchange = {
      initiatorId,
      targetId: input.targetUserId,
      pairKey: conversationIdOf(initiatorId, input.targetUserId),
      status: "pending" as const,
      initiatorEphemeralPublicKey: input.ephemeralPublicKey,
      initiatorSignature: input.signature,
      targetEphemeralPublicKey: null,
      targetSignature: null,
      createdAt: Timestamp.fromDate(now),
      expiresAt: Timestamp.fromMillis(now.getTime() + this.ttlSeconds * 1000),
      completedAt: null,
      supersededBy: null,
      requestDeliveredAt: null,
      responseDeliveredAt: null,
    };
    await this.exchanges.create(id, exchange);
    const stored = { id, ...exchange };
    await this.events.publish(stored.targetId, "key_exchange_request", requestEvent(stored));
    return { exchangeId: id, status: "pending" as const, createdAt: now.toISOString(), expiresAt: stored.expiresAt.toDate().toISOString() };
  }

  async respond(targetId: string, input: RespondInput) {
    await this.checkSignature(targetId, input.ephemeralPublicKey, input.signature);
    const responseCurve = parseEcPublicKeyPem(input.ephemeralPublicKey)!.curve;
    const completedAt = this.clock.now();
    const exchange = await this.exchanges.complete(
      input.exchangeId,
      { targetEphemeralPublicKey: input.ephemeralPublicKey, targetSignature: input.signature, completedAt },
      (current) => {
        if (current.targetId !== targetId && current.initiatorId !== targetId) {
          throw new AppError("NOT_FOUND", "Key exchange not found", { field: "exchangeId" });
        }
        if (current.targetId !== targetId) throw new AppError("FORBIDDEN", "Only the target of a key exchange can respond");
        const status = statusOf(current, completedAt);
        if (status === "expired") throw new AppError("EXCHANGE_EXPIRED", "This key exchange has expired; start a new one", { status });
        if (status !== "pending") {
          throw new AppError("EXCHANGE_NOT_PENDING", `This key exchange is ${status}`, { status });
        }
        const initiatorCurve = parseEcPublicKeyPem(current.initiatorEphemeralPublicKey)?.curve;
        if (initiatorCurve !== responseCurve) {
          throw new AppError("VALIDATION_ERROR", `ephemeralPublicKey must be on ${initiatorCurve}, like the initiator's`, {
            field: "ephemeralPublicKey",
          });
        }
      },
    );
    await this.events.publish(exchange.initiatorId, "key_exchange_response", responseEvent(exchange));
    return { exchangeId: exchange.id, confirmed: true, status: "completed" as const, completedAt: completedAt.toISOString() };
  }

  async pending(userId: string) {
    const now = this.clock.now();
    const { incoming, outgoing } = await this.exchanges.pendingFor(userId);
    const live = (list: Exchange[]) => list.filter((exchange) => statusOf(exchange, now) === "pending").map((e) => toView(e, now));
    return { incoming: live(incoming), outgoing: live(outgoing) };
  }

  async get(userId: string, exchangeId: string) {
    const exchange = await this.exchanges.find(exchangeId);
    // Existence is not revealed to anyone but the two participants.
    if (!exchange || (exchange.initiatorId !== userId && exchange.targetId !== userId)) {
      throw new AppError("NOT_FOUND", "Key exchange not found", { field: "exchangeId" });
    }
    return toView(exchange, this.clock.now());
  }

  /** The events the relay still owes a user who just connected (oldest first). */
  async undeliveredEvents(userId: string) {
    const now = this.clock.now();
    const { requests, responses } = await this.exchanges.undeliveredFor(userId);
    const byTime = (a: Exchange, b: Exchange) => a.createdAt.toMillis() - b.createdAt.toMillis();
    return [
      ...requests
        .filter((exchange) => statusOf(exchange, now) === "pending")
        .sort(byTime)
        .map((exchange) => ({ type: "key_exchange_request" as const, payload: requestEvent(exchange) })),
      ...responses.sort(byTime).map((exchange) => ({ type: "key_exchange_response" as const, payload: responseEvent(exchange) })),
    ];
  }

  async acknowledge(userId: string, exchangeId: string, what: "request" | "response"): Promise<void> {
    await this.exchanges.markDelivered(exchangeId, userId, what, this.clock.now());
  }
}

export function statusOf(exchange: Exchange, now: Date): ExchangeStatus {
  if (exchange.status === "pending" && exchange.expiresAt.toMillis() <= now.getTime()) return "expired";
  return exchange.status;
}

function toView(exchange: Exchange, now: Date): ExchangeView {
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

/** The guide's key_exchange_request payload (plus times). */
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

/** The guide's key_exchange_response payload. */
export function responseEvent(exchange: Exchange) {
  return {
    exchangeId: exchange.id,
    fromUserId: exchange.targetId,
    ephemeralPublicKey: exchange.targetEphemeralPublicKey,
    signature: exchange.targetSignature,
    status: "completed" as const,
  };
}
