import type { IncomingMessage } from "node:http";
import type { AppConfig } from "../config";
import { addressBucket } from "../shared/address-bucket";
import type { Clock } from "../shared/clock";
import { AppError } from "../shared/errors";
import { enforce, MemoryRateLimiter } from "../shared/rate-limit";
import type { RelaySocket } from "./schema";

/**
 * The relay's limits (README "Rate limits"), all per process: a socket lives on one instance, and
 * flooding one instance with connections or authentication attempts costs the attacker a connection
 * each.
 * Every per-address limit counts an IPv6 client's /64 as one address (shared/address-bucket.ts).
 * - Connections per client address: a rate and a cap on those held at once, both checked in Engine.IO's
 *   `allowRequest`, before the handshake does any work, so raw Engine.IO connections that never open a
 *   Socket.IO session count too (and Socket.IO's connectTimeout closes those within 10 s).
 * - Authentication attempts per address, sockets per user (checked when a socket authenticates).
 * - Events per socket; typing has its own per-socket limit (typing.ts); send_message is also bound by
 *   the per-pair limit it shares with the REST send, in Firestore.
 */
export class SocketLimits {
  private readonly buckets: MemoryRateLimiter;
  /** Engine.IO connections open now, per client address. */
  private readonly openByAddress = new Map<string, number>();

  constructor(
    private readonly policies: AppConfig["rateLimits"],
    private readonly caps: AppConfig["sockets"],
    clock: Clock,
    /** As Express's "trust proxy": how many X-Forwarded-For hops to believe for the client address. */
    private readonly trustedProxyHops: number,
  ) {
    this.buckets = new MemoryRateLimiter(clock);
  }

  /** Engine.IO's allowRequest (handshakes only): refuses an address over its rate or its cap of open connections. */
  readonly allowRequest = (request: IncomingMessage, answer: (message: string | null, success: boolean) => void): void => {
    const address = this.bucketOf(request);
    if ((this.openByAddress.get(address) ?? 0) >= this.caps.perAddress) {
      return answer(`Too many connections from this address (at most ${this.caps.perAddress})`, false);
    }
    const decision = this.buckets.consumeNow(`connect:${address}`, this.policies.socketConnect);
    if (!decision.allowed) return answer(`Too many connections; retry in ${decision.retryAfterSeconds} s`, false);
    answer(null, true);
  };

  /** An Engine.IO connection opened: counted against its address until it closes. */
  connectionOpened(request: IncomingMessage, onClose: (listener: () => void) => void): void {
    const address = this.bucketOf(request);
    this.openByAddress.set(address, (this.openByAddress.get(address) ?? 0) + 1);
    onClose(() => {
      const left = (this.openByAddress.get(address) ?? 1) - 1;
      if (left > 0) this.openByAddress.set(address, left);
      else this.openByAddress.delete(address);
    });
  }

  /** Before a token is checked: throws RATE_LIMITED when the address has tried too often. */
  authenticationAttempt(socket: RelaySocket): void {
    enforce(this.buckets.consumeNow(`auth:${this.addressOf(socket)}`, this.policies.socketAuth));
  }

  /** Throws RATE_LIMITED when the user already holds as many sockets here as allowed. */
  userSockets(heldHere: number): void {
    if (heldHere >= this.caps.perUser) {
      throw new AppError("RATE_LIMITED", `Too many connections for this user (at most ${this.caps.perUser}); close one first`, {
        limit: this.caps.perUser,
      });
    }
  }

  /** Every event a client emits: throws RATE_LIMITED when the socket sends too many. */
  event(socket: RelaySocket): void {
    enforce(this.buckets.consumeNow(`events:${socket.id}`, this.policies.socketEvents));
  }

  /** The socket is gone: its bucket goes too. */
  forget(socket: RelaySocket): void {
    this.buckets.forget(`events:${socket.id}`);
  }

  private addressOf(socket: RelaySocket): string {
    return this.bucketOf(socket.request);
  }

  /** The client address as a bucket: an IPv6 client's whole /64 counts as one (addressBucket). */
  private bucketOf(request: IncomingMessage): string {
    return addressBucket(clientAddress(request, this.trustedProxyHops));
  }
}

/**
 * The client's address as Express computes it with "trust proxy" set to a hop count: the connection's
 * peer, then X-Forwarded-For from right to left, skipping `trustedHops` proxies. With 0, the header is
 * ignored (a client cannot pick its own bucket).
 */
export function clientAddress(request: IncomingMessage, trustedHops: number): string {
  const header = request.headers["x-forwarded-for"];
  const forwarded = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  const chain = [request.socket.remoteAddress ?? "unknown", ...forwarded.reverse()];
  return chain[Math.min(trustedHops, chain.length - 1)]!;
}
