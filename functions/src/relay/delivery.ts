import type { DeviceService } from "../devices/service";
import type { KeyExchangeService } from "../keyexchange/service";
import { isRecordExpired } from "../messages/expiry";
import { messageExpiredEvent } from "../messages/expiry-sweep";
import type { MessageRecord } from "../messages/record";
import { compareDeliveryCursors, deliveryCursorOf, type BacklogPage, type DeliveryCursor, type MessageRepository } from "../messages/repository";
import type { Clock } from "../shared/clock";
import { ConcurrencyLimit } from "../shared/concurrency-limit";
import { errors } from "../shared/errors";
import { deviceIdOf } from "../shared/ids";
import type { Logger } from "../shared/logger";
import { isInAudience, type DeviceAudience } from "../shared/user-events";
import type { KeyChangeNotices } from "../users/key-notices";
import type { Acknowledgements } from "./acknowledgements";
import type { UserEvent } from "./events";
import type { RelayServer, RelaySocket } from "./schema";

/**
 * What one socket is owed, and what it has been sent: the backlog of the socket's device (messages
 * stored before its user's presence on this instance was registered that this device has not
 * acknowledged) read page by page, then the messages routed to this instance for this device as they
 * come (events.ts). Each message goes out once per socket, oldest first. Devices are independent: one
 * device's acknowledgement takes the message out of its own backlog only (messages/repository.ts).
 *
 * Why this is complete (no message stored for the device is missed):
 * - A message committed before the presence registration is in the database before the first page is
 *   read, and the pages walk the delivery order (server timestamp, sequenceNumber, id) from the start,
 *   over the messages whose pendingDevices list this device.
 * - A message committed after it was routed to this instance (messages/repository.ts `append`) with an
 *   audience that lists this device (its session, created before the socket authenticated, was on the
 *   receiver's device list the storing transaction read), and its event reaches `offer`. While a page is being read it is held: when the page comes back, held
 *   messages at or before the page's end are sent (the page may have been read before they committed),
 *   later ones are left to the next page, which is read after they committed and so finds them.
 *   Between pages the same rule applies at once. After the last page everything offered is sent.
 * Repeats (a message both in a page and offered) are dropped by id.
 *
 * A disappearing message is sent only before its expiresAt (read from the injected clock at the moment
 * of sending): the backlog query leaves expired ones out, and a routed event that arrives late, or a
 * held one sent after its page, is dropped here. Its sender hears of it through `message_expired`.
 */

/** Messages read per backlog page. */
export const BACKLOG_PAGE_SIZE = 100;
/**
 * Unacknowledged backlog messages in flight on one socket before the next page is read: a receiver with
 * 10,000 waiting costs this many records of memory, not 10,000. Messages arriving live are not held back.
 */
export const BACKLOG_WINDOW = 200;
/**
 * Reads of what connecting sockets are owed (key-exchange and expiry notices, backlog pages) running at
 * once on an instance. A reconnect storm (a deploy, a network blip) otherwise opens a Firestore stream per
 * socket at the same moment; measured with 5,000 sockets connecting 100 at a time, those reads left about
 * 20 KiB of resident memory per socket behind (bench:relay capacity). Each read takes milliseconds, so a
 * socket waits little for its turn.
 */
const CONCURRENT_OWED_READS = 4;
/** Ids remembered per socket to drop repeats (a message both in a page and routed; a re-read feed). */
const RECENT_IDS = 1000;
const PAGE_RETRY_MS = [250, 1000, 4000];

type Phase = "waiting" | "paging" | "live";

export class SocketDelivery {
  private phase: Phase = "waiting";
  private cursor: DeliveryCursor | undefined;
  private pageInFlight = false;
  private heldDuringPage: MessageRecord[] = [];
  /** Sent on this socket, oldest first (a Set keeps insertion order). */
  private readonly recent = new Set<string>();
  /** Backlog messages sent and not yet acknowledged by this socket (flow control). */
  private readonly unacknowledged = new Set<string>();
  private windowOpened: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly socket: RelaySocket,
    private readonly userId: string,
    /** The socket's device: its backlog is this device's own (CONTRACT.md "Devices"). */
    private readonly deviceId: string,
    private readonly messages: MessageRepository,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly onAcknowledge: (messageId: string) => Promise<void>,
    /** Backlog reads take a turn in the instance's limit (createDelivery). */
    private readonly inTurn: <T>(read: () => Promise<T>) => Promise<T> = (read) => read(),
  ) {}

  /** A message routed to this instance for the socket's user. */
  offer(record: MessageRecord): void {
    if (this.stopped) return;
    if (this.phase === "live") return this.send(record);
    if (this.pageInFlight) {
      this.heldDuringPage.push(record);
      return;
    }
    // Waiting: the first page has not been read, and will find it. Between pages: see the class comment.
    if (this.phase === "paging" && this.cursor && compareDeliveryCursors(deliveryCursorOf(record), this.cursor) <= 0) this.send(record);
  }

  /** Reads and sends the backlog, then switches to live delivery. Resolves when done (or stopped). */
  async deliverBacklog(): Promise<void> {
    this.phase = "paging";
    for (;;) {
      await this.roomInWindow();
      if (this.stopped) return;
      const page = await this.readPage();
      if (page === undefined) return;
      for (const record of page.records) this.send(record, { backlog: true });
      // The cursor moves past expired messages too (they were read, not sent), and `last` is whether the
      // query ran out, not how many were sent: a page of expired messages is not the end of the backlog.
      if (page.cursor) this.cursor = page.cursor;
      const last = page.last;
      const held = this.heldDuringPage.sort((x, y) => compareDeliveryCursors(deliveryCursorOf(x), deliveryCursorOf(y)));
      this.heldDuringPage = [];
      for (const record of held) {
        if (last || (this.cursor && compareDeliveryCursors(deliveryCursorOf(record), this.cursor) <= 0)) this.send(record);
      }
      if (last) {
        this.phase = "live";
        this.unacknowledged.clear();
        this.windowOpened?.();
        return;
      }
    }
  }

  /** This socket acknowledged a message (with the ack callback or `message_ack`). */
  acknowledged(messageId: string): void {
    if (!this.unacknowledged.delete(messageId)) return;
    if (this.unacknowledged.size < BACKLOG_WINDOW / 2) this.windowOpened?.();
  }

  /**
   * A durable notice (key exchange, `message_expired`): sent once per socket (`key` names it), marked
   * delivered when acknowledged, read again on the next connection until then.
   */
  sendNotice(type: NoticeType, key: string, payload: Record<string, unknown>, onAcknowledge: () => void): void {
    if (this.stopped || !this.remember(`${type}:${key}`)) return;
    this.socket.emit(type, payload as never, onAcknowledge);
  }

  stop(): void {
    this.stopped = true;
    this.heldDuringPage = [];
    this.windowOpened?.();
  }

  get isLive(): boolean {
    return this.phase === "live";
  }

  private send(record: MessageRecord, { backlog = false } = {}): void {
    // Never delivered from expiresAt on: not a routed event arriving late, not one held during a page.
    if (isRecordExpired(record, this.clock.now())) return;
    if (!this.remember(record.id)) return;
    if (backlog) this.unacknowledged.add(record.id);
    this.socket.emit("message_received", record, () => {
      this.acknowledged(record.id);
      this.onAcknowledge(record.id).catch((error: Error) =>
        this.logger.warn("acknowledgement failed", { userId: this.userId, messageId: record.id, error }),
      );
    });
  }

  /** False if already sent on this socket. */
  private remember(key: string): boolean {
    if (this.recent.has(key)) return false;
    this.recent.add(key);
    if (this.recent.size > RECENT_IDS) this.recent.delete(this.recent.values().next().value!);
    return true;
  }

  private async roomInWindow(): Promise<void> {
    while (!this.stopped && this.unacknowledged.size >= BACKLOG_WINDOW) {
      await new Promise<void>((resolve) => (this.windowOpened = resolve));
      this.windowOpened = undefined;
    }
  }

  /** One page; a failed read is retried, and if the database stays busy the socket's transport is dropped so the client reconnects. */
  private async readPage(): Promise<BacklogPage | undefined> {
    this.pageInFlight = true;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.inTurn(() => this.messages.undeliveredPage(this.userId, this.deviceId, BACKLOG_PAGE_SIZE, this.clock.now(), this.cursor));
        } catch (error) {
          if (this.stopped) return undefined;
          if (attempt >= PAGE_RETRY_MS.length) {
            this.logger.warn("backlog read failed; dropping the socket so it reconnects", { userId: this.userId, error });
            this.socket.conn.close();
            return undefined;
          }
          await new Promise((resolve) => setTimeout(resolve, PAGE_RETRY_MS[attempt]));
          if (this.stopped) return undefined;
        }
      }
    } finally {
      this.pageInFlight = false;
    }
  }
}

/** The events that are durable notices: sent per socket, acknowledged with the ack callback. */
type NoticeType = "key_exchange_request" | "key_exchange_response" | "message_expired" | "device_link_approved" | "device_link_rejected" | "key_changed";

/** The room of a user's sockets on this instance: the relay's only way of finding them. */
export const userRoom = (userId: string) => `user:${userId}`;

/** Events passed on as they are to every socket of their user here. */
const FORWARDED_EVENTS = new Set(["typing_indicator", "user_online", "user_offline", "message_delivered", "file_deleted", "message_sent", "device_link_request"]);

export interface DeliveryDeps {
  io: RelayServer;
  messages: MessageRepository;
  keyNotices: KeyChangeNotices;
  keyExchanges: KeyExchangeService;
  /** Device-link answers owed to a requester device (devices/service.ts). */
  devices: Pick<DeviceService, "owedTo">;
  acknowledgements: Acknowledgements;
  logger: Logger;
  clock: Clock;
}

/**
 * Delivery on this instance: each authenticated socket is in its user's room and has a SocketDelivery;
 * the instance's event feed hands every event here, and it goes to the sockets in its user's room.
 */
export function createDelivery({ io, messages, keyNotices, keyExchanges, devices, acknowledgements, logger, clock }: DeliveryDeps) {
  const deliveries = new Map<string, SocketDelivery>();
  const owedReads = new ConcurrencyLimit(CONCURRENT_OWED_READS);
  const inTurn = <T>(read: () => Promise<T>) => owedReads.run(read);

  /** The user's sockets here, those of the devices in `audience` only (all when absent). */
  function* socketsOf(userId: string, audience?: DeviceAudience): Generator<RelaySocket> {
    const namespace = io.of("/");
    for (const socketId of namespace.adapter.rooms.get(userRoom(userId)) ?? []) {
      const socket = namespace.sockets.get(socketId);
      if (socket && isInAudience(deviceIdOf(socket.data.sessionId!), audience)) yield socket;
    }
  }

  function sendKeyExchange(socket: RelaySocket, userId: string, type: "key_exchange_request" | "key_exchange_response", payload: Record<string, unknown>) {
    const exchangeId = String(payload.exchangeId);
    deliveries.get(socket.id)?.sendNotice(type, exchangeId, payload, () => {
      acknowledgements
        .keyExchange(userId, deviceIdOf(socket.data.sessionId!), exchangeId, type === "key_exchange_request" ? "request" : "response")
        .catch((error: Error) => logger.warn("key exchange acknowledgement failed", { userId, exchangeId, error }));
    });
  }

  function sendKeyChanged(socket: RelaySocket, recipientId: string, payload: { userId: string; publicKey: string }) {
    // Keyed by the key itself: a second change of the same user is a new notice on this socket.
    deliveries.get(socket.id)?.sendNotice("key_changed", `${payload.userId}:${payload.publicKey}`, payload, () => {
      acknowledgements
        .keyChanged(recipientId, payload.userId, payload.publicKey)
        .catch((error: Error) => logger.warn("key_changed acknowledgement failed", { userId: recipientId, changedUserId: payload.userId, error }));
    });
  }

  function sendMessageExpired(socket: RelaySocket, userId: string, payload: Record<string, unknown>) {
    const messageId = String(payload.messageId);
    deliveries.get(socket.id)?.sendNotice("message_expired", messageId, payload, () => {
      acknowledgements
        .messageExpired(userId, messageId)
        .catch((error: Error) => logger.warn("message_expired acknowledgement failed", { userId, messageId, error }));
    });
  }

  /** A device-link answer, to the requester device's socket: acknowledged, its payload is deleted. */
  function sendDeviceLink(socket: RelaySocket, userId: string, type: "device_link_approved" | "device_link_rejected", payload: Record<string, unknown>) {
    const requestId = String(payload.requestId);
    const deviceId = deviceIdOf(socket.data.sessionId!);
    deliveries.get(socket.id)?.sendNotice(type, requestId, payload, () => {
      acknowledgements.deviceLink(userId, deviceId, requestId).catch((error: Error) => logger.warn("device link acknowledgement failed", { userId, requestId, error }));
    });
  }

  return {
    /** Puts an authenticated socket in its user's room (synchronous: see authentication.ts). */
    attach(socket: RelaySocket, userId: string): void {
      void socket.join(userRoom(userId));
      const deviceId = deviceIdOf(socket.data.sessionId!);
      const acknowledge = (messageId: string) => acknowledgements.message(userId, deviceId, messageId);
      const delivery = new SocketDelivery(socket, userId, deviceId, messages, logger, clock, acknowledge, inTurn);
      deliveries.set(socket.id, delivery);
    },

    /** True once the socket is authenticated and attached (events other than `authenticate` are then allowed). */
    isAttached(socket: RelaySocket): boolean {
      return deliveries.has(socket.id);
    },

    /**
     * What the user is owed since before this socket: pending key-exchange notices, unacknowledged
     * `message_expired` notices (oldest expiry first), this device's unacknowledged device-link answers,
     * unacknowledged `key_changed` notices, then the message backlog.
     */
    async deliverOwed(socket: RelaySocket, userId: string): Promise<void> {
      const delivery = deliveries.get(socket.id);
      if (!delivery) return;
      try {
        // Both notice lists in one turn: a socket of a reconnect storm queues once for them, not twice.
        const [exchanges, expiries, deviceLinks, keyChanges] = await inTurn(
          async () =>
            [
              await keyExchanges.undeliveredEvents(userId, deviceIdOf(socket.data.sessionId!)),
              await messages.expiryNoticesFor(userId),
              await devices.owedTo(userId, deviceIdOf(socket.data.sessionId!)),
              await keyNotices.noticesFor(userId),
            ] as const,
        );
        for (const owed of exchanges) sendKeyExchange(socket, userId, owed.type, owed.payload);
        for (const notice of expiries) sendMessageExpired(socket, userId, messageExpiredEvent(notice));
        for (const owed of deviceLinks) sendDeviceLink(socket, userId, owed.type, owed.payload);
        for (const notice of keyChanges) sendKeyChanged(socket, userId, { userId: notice.userId, publicKey: notice.publicKey });
        await delivery.deliverBacklog();
      } catch (error) {
        logger.warn("backlog delivery failed; dropping the socket so it reconnects", { userId, error });
        socket.conn.close();
      }
    },

    /** The socket acknowledged with `message_ack` (the ack callback is handled by SocketDelivery itself). */
    acknowledged(socket: RelaySocket, messageId: string): void {
      deliveries.get(socket.id)?.acknowledged(messageId);
    },

    detach(socket: RelaySocket): void {
      deliveries.get(socket.id)?.stop();
      deliveries.delete(socket.id);
    },

    /** An event from the instance's feed. */
    handleEvent(event: UserEvent): void {
      const { audience } = event;
      if (event.type === "message_received") {
        for (const socket of socketsOf(event.userId, audience)) deliveries.get(socket.id)?.offer(event.payload as MessageRecord);
      } else if (event.type === "session_revoked") {
        for (const socket of socketsOf(event.userId, audience)) {
          if (socket.data.sessionId !== event.payload.sessionId) continue;
          const { code, message } = errors.sessionEnded();
          socket.emit("auth_error", { code, message });
          socket.disconnect(true);
        }
      } else if (event.type === "key_exchange_request" || event.type === "key_exchange_response") {
        for (const socket of socketsOf(event.userId, audience)) sendKeyExchange(socket, event.userId, event.type, event.payload);
      } else if (event.type === "device_link_approved" || event.type === "device_link_rejected") {
        for (const socket of socketsOf(event.userId, audience)) sendDeviceLink(socket, event.userId, event.type, event.payload);
      } else if (event.type === "key_changed") {
        const payload = { userId: String(event.payload.userId), publicKey: String(event.payload.publicKey) };
        for (const socket of socketsOf(event.userId, audience)) sendKeyChanged(socket, event.userId, payload);
      } else if (event.type === "message_expired") {
        for (const socket of socketsOf(event.userId, audience)) sendMessageExpired(socket, event.userId, event.payload);
      } else if (FORWARDED_EVENTS.has(event.type)) {
        if (!audience) io.to(userRoom(event.userId)).emit(event.type as "typing_indicator", event.payload as never);
        else for (const socket of socketsOf(event.userId, audience)) socket.emit(event.type as "typing_indicator", event.payload as never);
      }
    },

    /** Sockets being delivered to (for stats). */
    get size(): number {
      return deliveries.size;
    },
  };
}
