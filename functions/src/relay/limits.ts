import type { IncomingMessage } from "node:http";
import type { Socket } from "socket.io";
import type { AppConfig } from "../config";
import type { Clock } from "../shared/clock";
import { errors, toEnvelope } from "../shared/errors";
import { enforce, MemoryRateLimiter } from "../shared/rate-limit";

/**
 * The relay's rate limits (README "Rate limits"), all per process: a socket lives on one instance, and
 * flooding one instance with connections or authentication attempts costs the attacker a connection
 * each. Connections and authentication attempts count per client address, events per socket.
 * Typing has its own per-socket limit (typing.ts); send_message is also bound by the per-pair limit it
 * shares with the REST send, in Firestore.
 */
export class SocketLimits {
  private readonly buckets: MemoryRateLimiter;

  constructor(
    private readonly policies: AppConfig["rateLimits"],
    clock: Clock,
    /** As Express's "trust proxy": how many X-Forwarded-For hops to believe for the client address. */
    private readonly trustedProxyHops: number,
  ) {
    this.buckets = new MemoryRateLimiter(clock);
  }

  /** io.use() middleware: one address opening too many connections gets `connect_error` RATE_LIMITED. */
  readonly connection = (socket: Socket, next: (error?: Error) => void): void => {
    const decision = this.buckets.consumeNow(`connect:${this.addressOf(socket)}`, this.policies.socketConnect);
    if (decision.allowed) return next();
    const refusal = errors.rateLimited(decision.retryAfterSeconds);
    // Socket.IO hands `data` to the client's connect_error handler: the envelope's inner object.
    next(Object.assign(new Error(refusal.message), { data: toEnvelope(refusal).error }));
  };

  /** Before a token is checked: throws RATE_LIMITED when the address has tried too often. */
  authenticationAttempt(socket: Socket): void {
    enforce(this.buckets.consumeNow(`auth:${this.addressOf(socket)}`, this.policies.socketAuth));
  }

  /** Every event a client emits: throws RATE_LIMITED when the socket sends too many. */
  event(socket: Socket): void {
    enforce(this.buckets.consumeNow(`events:${socket.id}`, this.policies.socketEvents));
  }

  /** The socket is gone: its bucket goes too. */
  forget(socket: Socket): void {
    this.buckets.forget(`events:${socket.id}`);
  }

  private addressOf(socket: Socket): string {
    return clientAddress(socket.request, this.trustedProxyHops);
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
