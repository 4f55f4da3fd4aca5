import type { Socket } from "socket.io";
import type { MessageRecord } from "../messages/record";
import type { MessageRepository } from "../messages/repository";
import type { Logger } from "../shared/logger";
import type { UserEvent, UserEvents } from "./events";

/**
 * One connected user on this relay instance: the user's sockets here, and the two Firestore
 * listeners that feed them (undelivered messages, and the user's event feed). Opened with the first
 * socket, closed with the last.
 */

/** Undelivered messages held in view at once; more enter as these are acknowledged. */
const DELIVERY_WINDOW = 200;
const MAX_RETRY_DELAY_MS = 30_000;
/** Event ids remembered to drop duplicates after a listener is re-opened. */
const SEEN_EVENTS_LIMIT = 1000;
/** Events slightly older than the listener are still wanted (clock skew between instances). */
const EVENTS_LOOKBACK_MS = 2000;

const FORWARDED_EVENTS = new Set(["typing_indicator", "user_online", "user_offline", "message_delivered"]);

export interface ChannelHandlers {
  onAcknowledge(messageId: string): Promise<void>;
  onSessionRevoked(sessionId: string): void;
}

export class UserChannel {
  readonly sockets = new Set<Socket>();
  private readonly sentBySocket = new Map<Socket, Set<string>>();
  /** Undelivered messages in delivery order (oldest first). */
  private readonly pending = new Map<string, MessageRecord>();
  private readonly seenEvents = new Set<string>();
  private stopMessages: (() => void) | undefined;
  private stopEvents: (() => void) | undefined;
  private readonly eventsSinceMs = Date.now() - EVENTS_LOOKBACK_MS;
  private closed = false;
  private readonly retryTimers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly userId: string,
    private readonly messages: MessageRepository,
    private readonly events: UserEvents,
    private readonly logger: Logger,
    private readonly handlers: ChannelHandlers,
  ) {}

  get listenerCount(): number {
    return (this.stopMessages ? 1 : 0) + (this.stopEvents ? 1 : 0);
  }

  open(): void {
    this.openMessages(0);
    this.openEvents(0);
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
    this.closed = true;
    this.stopMessages?.();
    this.stopEvents?.();
    this.stopMessages = undefined;
    this.stopEvents = undefined;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
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

  private openMessages(attempt: number): void {
    if (this.closed) return;
    this.stopMessages = this.messages.listenUndelivered(
      this.userId,
      DELIVERY_WINDOW,
      (added, removedIds) => {
        attempt = 0;
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
      (error) => {
        this.stopMessages = undefined;
        this.retry("messages", attempt, error, () => this.openMessages(attempt + 1));
      },
    );
  }

  private openEvents(attempt: number): void {
    if (this.closed) return;
    this.stopEvents = this.events.listen(
      this.userId,
      this.eventsSinceMs,
      (event) => {
        attempt = 0;
        this.handleEvent(event);
      },
      (error) => {
        this.stopEvents = undefined;
        this.retry("events", attempt, error, () => this.openEvents(attempt + 1));
      },
    );
  }

  private handleEvent(event: UserEvent): void {
    if (this.seenEvents.has(event.id)) return;
    this.seenEvents.add(event.id);
    if (this.seenEvents.size > SEEN_EVENTS_LIMIT) this.seenEvents.delete(this.seenEvents.values().next().value!);
    if (event.type === "session_revoked") {
      this.handlers.onSessionRevoked(String(event.payload.sessionId));
    } else if (FORWARDED_EVENTS.has(event.type)) {
      for (const socket of this.sockets) socket.emit(event.type, event.payload);
    }
  }

  /** A listener that errors is re-opened, with backoff; what it had delivered is not sent again. */
  private retry(which: string, attempt: number, error: Error, reopen: () => void): void {
    if (this.closed) return;
    const delay = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** attempt);
    this.logger.warn("relay listener failed; re-opening", { userId: this.userId, listener: which, delayMs: delay, error });
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      reopen();
    }, delay);
    timer.unref();
    this.retryTimers.add(timer);
  }
}
