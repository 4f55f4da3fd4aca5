import type { Clock } from "../shared/clock";
import { audienceOfPending } from "../shared/device-delivery";
import { AppError, errors } from "../shared/errors";
import { newId } from "../shared/ids";
import { parseEcPublicKeyPem, type EcPublicKey } from "../shared/keys";
import { canSeeExchange } from "../shared/policies";
import type { UserEventPublisher } from "../shared/user-events";
import type { UserRepository } from "../users/repository";
import { requestEvent, responseEvent, toExchangeView } from "./presenters";
import type { Exchange, KeyExchangeRepository } from "./repository";
import type { InitiateInput, RespondInput } from "./schema";
import { verifySignature } from "./signatures";
import { startExchange, statusOf } from "./state-machine";

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
    const exchange = { id, ...(await this.exchanges.create(id, startExchange(initiatorId, input, now, this.ttlSeconds))) };
    // To the target's devices that were listed when it was stored; a device added later reads it with GET /keyexchange/pending.
    await this.events.publish(exchange.targetId, "key_exchange_request", requestEvent(exchange), audienceOfPending(exchange.requestPendingDevices ?? []));
    return { exchangeId: id, status: "pending" as const, createdAt: now.toISOString(), expiresAt: exchange.expiresAt.toDate().toISOString() };
  }

  async respond(targetId: string, input: RespondInput) {
    await this.checkSignature(targetId, input.ephemeralPublicKey, input.signature);
    const completedAt = this.clock.now();
    const response = { targetEphemeralPublicKey: input.ephemeralPublicKey, targetSignature: input.signature, completedAt };
    const exchange = await this.exchanges.complete(input.exchangeId, targetId, response);
    await this.events.publish(exchange.initiatorId, "key_exchange_response", responseEvent(exchange), audienceOfPending(exchange.responsePendingDevices ?? []));
    return { exchangeId: exchange.id, confirmed: true, status: "completed" as const, completedAt: completedAt.toISOString() };
  }

  async pending(userId: string) {
    const now = this.clock.now();
    const { incoming, outgoing } = await this.exchanges.pendingFor(userId);
    const live = (list: Exchange[]) => list.filter((exchange) => statusOf(exchange, now) === "pending").map((e) => toExchangeView(e, now));
    return { incoming: live(incoming), outgoing: live(outgoing) };
  }

  async get(userId: string, exchangeId: string) {
    const exchange = await this.exchanges.find(exchangeId);
    // Existence is not revealed to anyone but the two participants.
    if (!exchange || !canSeeExchange(userId, exchange)) throw errors.exchangeNotFound();
    return toExchangeView(exchange, this.clock.now());
  }

  /** The events the relay still owes one device of a user, which just connected (oldest first). */
  async undeliveredEvents(userId: string, deviceId: string) {
    const now = this.clock.now();
    const { requests, responses } = await this.exchanges.undeliveredFor(userId, deviceId);
    const byTime = (a: Exchange, b: Exchange) => a.createdAt.toMillis() - b.createdAt.toMillis();
    return [
      ...requests
        .filter((exchange) => statusOf(exchange, now) === "pending")
        .sort(byTime)
        .map((exchange) => ({ type: "key_exchange_request" as const, payload: requestEvent(exchange) })),
      ...responses.sort(byTime).map((exchange) => ({ type: "key_exchange_response" as const, payload: responseEvent(exchange) })),
    ];
  }

  async acknowledge(userId: string, deviceId: string, exchangeId: string, what: "request" | "response"): Promise<void> {
    await this.exchanges.markDelivered(exchangeId, userId, deviceId, what, this.clock.now());
  }
}
