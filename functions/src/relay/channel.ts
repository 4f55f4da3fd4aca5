import type { Socket } from "socket.io";
import type { MessageRecord } from "../messages/record";
import type { MessageRepository } from "../messages/repository";
import type { Logger } from "../shared/logger";
import type { UserEvent } from "./events";
import { keepListening, type ResilientListener } from "./resilient-listener";

/**
 * One connected user on this relay instance: the user's sockets here and the Firestore listener on
 * their undelivered messages. Opened with the first socket, closed with the last. The user's events
 * arrive through the instance's event feed (relay.ts), which hands them to handleEvent.
 */

/** Undelivered messages held in view at once; more enter as these are acknowledged. */
const DELIVERY_WINDOW = 200;
const FORWARDED_EVENTS = new Set(["typing_indicator", "user_online", "user_offline", "message_delivered"]);

export interface ChannelHandlers {
  onAcknowledge(messageId: string): Promise<void>;
  onKeyExchangeAcknowledged(exchangeId: string, what: "request" | "response"): Promise<void>;
  onSessionRevoked(sessionId: string): void;
}

export class UserChannel {
  readonly sockets = new Set<Socket>();
  private readonly sentBySocket = new Map<Socket, Set<string>>();
  /** Undelivered messages in delivery order (oldest first). */
  private readonly pending = new Map<string, MessageRecord>();
  private listener: ResilientListener | undefined;

  constructor(
    private readonly userId: string,
    private readonly messages: MessageRepository,
    private readonly logger: Logger,
    private readonly handlers: ChannelHandlers,
  ) {}

  get listenerCount(): number {
    return this.listener?.open ? 1 : 0;
  }

  /** A listener re-opened after an error delivers from scratch; `sent` keeps sockets from repeats. */
  open(): void {
    this.listener = keepListening({ userId: this.userId, listener: "undelivered messages" }, this.logger, (healthy, onError) => {
      // Each (re-)opened listener starts with a complete snapshot of what is undelivered.
      this.pending.clear();
      return this.messages.listenUndelivered(
        this.userId,
        DELIVERY_WINDOW,
        (added, removedIds) => {
          healthy();
          for (const id of removedIds) {
            // Acknowledged (here or on another instance): forget it everywhere.
            this.pending.delete(id);
            for (const sent of this.sentBySocket.values()) sent.delete(id);
          }
          for (const record of added) {
            this.pending.set(record.id, record);
            for (const socket of this.sockets) this.deliver(socket, record);
          }
        },
        onError,
      );
    });
  }

  add(socket: Socket, sent: Set<string>): void {
    this.sockets.add(socket);
    this.sentBySocket.set(socket, sent);
    // A socket joining late gets what is still undelivered, oldest first.
    for (const record of this.pending.values()) this.deliver(socket, record);
  }

  remove(socket: Socket): void {
    this.sockets.delete(socket);
    this.sentBySocket.delete(socket);
  }

  close(): void {
    this.listener?.stop();
    this.listener = undefined;
    this.pending.clear();
  }

  private deliver(socket: Socket, record: MessageRecord): void {
    const sent = this.sentBySocket.get(socket);
    if (!sent || sent.has(record.id)) return;
    sent.add(record.id);
    socket.emit("message_received", record, () => {
      this.handlers.onAcknowledge(record.id).catch((error: Error) =>
        this.logger.warn("acknowledgement failed", { userId: this.userId, messageId: record.id, error }),
      );
    });
  }

  /** An event from the instance's feed addressed to this user. */
  handleEvent(event: Pick<UserEvent, "type" | "payload">): void {
    if (event.type === "session_revoked") {
      this.handlers.onSessionRevoked(String(event.payload.sessionId));
    } else if (event.type === "key_exchange_request" || event.type === "key_exchange_response") {
      for (const socket of this.sockets) this.deliverKeyExchange(socket, event.type, event.payload);
    } else if (FORWARDED_EVENTS.has(event.type)) {
      for (const socket of this.sockets) socket.emit(event.type, event.payload);
    }
  }

  /**
   * Key exchange requests and responses are durable like messages: sent once per socket, and marked
   * delivered when acknowledged (until then they come back on the next connection).
   */
  deliverKeyExchange(socket: Socket, type: "key_exchange_request" | "key_exchange_response", payload: Record<string, unknown>): void {
    const sent = this.sentBySocket.get(socket);
    const exchangeId = String(payload.exchangeId);
    const key = `${type}:${exchangeId}`;
    if (!sent || sent.has(key)) return;
    sent.add(key);
    socket.emit(type, payload, () => {
      this.handlers
        .onKeyExchangeAcknowledged(exchangeId, type === "key_exchange_request" ? "request" : "response")
        .catch((error: Error) => this.logger.warn("key exchange acknowledgement failed", { userId: this.userId, exchangeId, error }));
    });
  }
}
