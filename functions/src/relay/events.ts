import { FieldValue, Timestamp, type DocumentSnapshot, type Firestore, type Transaction } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { COLLECTIONS } from "../shared/firestore";
import type { DeviceAudience, MessageRouting, RoutedMessage, UserEventPublisher, UserEventType } from "../shared/user-events";

/**
 * Events for connected users, carried through Firestore to whichever relay instances hold their sockets.
 *
 * Each relay instance has a feed of its own, `relayInstances/{instanceId}/relayEvents`, and one listener
 * on it (event-feed.ts): that is the only Firestore listener an instance holds, whatever the number of its
 * users. An event for a user is written into the feed of every instance listed in the user's presence
 * document (relay/presence.ts); a user with no socket anywhere gets nothing written.
 *
 * - `message_received` is written by the transaction that stores the message (routeMessage below), so a
 *   message is routed to exactly the instances that registered the receiver before it committed; a
 *   connection registering later finds the message with its backlog query (relay/delivery.ts). One
 *   event per instance whatever the number of devices: its audience lists the devices that owe an
 *   acknowledgement, and the instance offers it only to their sockets.
 * - Everything else (typing, presence changes, receipts, key-exchange and `message_expired` notices,
 *   session revocations) is published after its own write. Durable ones (key exchanges, expiry notices)
 *   are also read from their own collection on connection, until acknowledged. An instance in the publishing process (`deliverLocally`) gets its
 *   events handed over directly: a receipt or typing event between two users of one instance then costs
 *   no feed write and no listener round trip (on the emulator, every feed write is matched against the
 *   listener's whole result set).
 *
 * A feed of its own per instance (not one collection for all) keeps each listener's collection small:
 * the emulator evaluates a listener against the collection it listens to on every commit
 * (bench/emulator-listeners.mjs), and a fresh instance starts with an empty feed.
 */
export interface UserEvent {
  id: string;
  userId: string;
  type: UserEventType;
  payload: Record<string, unknown>;
  /** Which of the user's devices it is for (all when absent). */
  audience?: DeviceAudience;
  /** Server time of the write. */
  createdAtMs: number;
}

/** How long an event is kept (TTL): it only matters to sockets connected now. */
const EVENT_TTL_MS = 60 * 60 * 1000;
/** Firestore batches hold at most 500 writes. */
const BATCH_SIZE = 450;

interface PresenceDoc {
  instances?: Record<string, boolean>;
}

/** The relay instances listed in a presence document: where the user's sockets are (or were, if one died). */
export function instancesIn(presence: DocumentSnapshot | undefined): string[] {
  return Object.keys((presence?.data() as PresenceDoc | undefined)?.instances ?? {});
}

export class UserEvents implements UserEventPublisher, MessageRouting {
  private readonly presence;
  private readonly instances;
  /** Relay instances running in this process, by id: they take their users' events without the feed. */
  private readonly localInstances = new Map<string, (event: UserEvent) => void>();

  constructor(
    private readonly db: Firestore,
    private readonly clock: Clock,
  ) {
    this.presence = db.collection(COLLECTIONS.presence);
    this.instances = db.collection(COLLECTIONS.relayInstances);
  }

  isConnected(presence: DocumentSnapshot | undefined): boolean {
    return instancesIn(presence).length > 0;
  }

  presenceRef(userId: string) {
    return this.presence.doc(userId);
  }

  /** The feed of one relay instance. */
  feedOf(instanceId: string) {
    return this.instances.doc(instanceId).collection(COLLECTIONS.relayEvents);
  }

  /**
   * Inside the transaction that stores a message, which has read the receiver's presence: one
   * `message_received` event per instance holding the receiver. The event's id is the message id, so a
   * feed never holds one message twice.
   */
  routeMessage(tx: Transaction, receiverPresence: DocumentSnapshot | undefined, message: RoutedMessage, nowMs: number, audience?: DeviceAudience): void {
    for (const instanceId of instancesIn(receiverPresence)) {
      tx.create(this.feedOf(instanceId).doc(message.id), this.eventData(message.receiverId, "message_received", message, nowMs, audience));
    }
  }

  /**
   * Events this process publishes for users on `instanceId` go straight to `onEvent` instead of through
   * the instance's feed (events routed inside a send transaction still go through the feed). Returns the
   * function that stops it.
   */
  deliverLocally(instanceId: string, onEvent: (event: UserEvent) => void): () => void {
    this.localInstances.set(instanceId, onEvent);
    return () => {
      if (this.localInstances.get(instanceId) === onEvent) this.localInstances.delete(instanceId);
    };
  }

  async publish(userId: string, type: UserEventType, payload: Record<string, unknown>, audience?: DeviceAudience): Promise<void> {
    await this.publishToMany([userId], type, payload, audience);
  }

  /** The same event for many users (presence fan-out): one write per (user, instance holding them). */
  async publishToMany(userIds: string[], type: UserEventType, payload: Record<string, unknown>, audience?: DeviceAudience): Promise<void> {
    if (userIds.length === 0) return;
    const presence = await this.db.getAll(...userIds.map((id) => this.presence.doc(id)));
    const writes: Array<{ userId: string; instanceId: string }> = [];
    const nowMs = this.clock.now().getTime();
    presence.forEach((doc, index) => {
      const userId = userIds[index]!;
      for (const instanceId of instancesIn(doc)) {
        const local = this.localInstances.get(instanceId);
        if (local) local({ id: this.feedOf(instanceId).doc().id, userId, type, payload, ...(audience ? { audience } : {}), createdAtMs: nowMs });
        else writes.push({ userId, instanceId });
      }
    });
    for (let start = 0; start < writes.length; start += BATCH_SIZE) {
      const batch = this.db.batch();
      for (const { userId, instanceId } of writes.slice(start, start + BATCH_SIZE)) {
        batch.create(this.feedOf(instanceId).doc(), this.eventData(userId, type, payload, nowMs, audience));
      }
      await batch.commit();
    }
  }

  /**
   * Calls `onEvents` with each snapshot's new events in the instance's feed from `sinceMs` on, in
   * creation order (the first call may have none). Returns the function that stops listening.
   */
  listenForInstance(instanceId: string, sinceMs: number, onEvents: (events: UserEvent[]) => void, onError: (error: Error) => void): () => void {
    return this.feedOf(instanceId)
      .where("createdAt", ">=", Timestamp.fromMillis(sinceMs))
      .orderBy("createdAt")
      .onSnapshot((snapshot) => {
        const added: UserEvent[] = [];
        for (const change of snapshot.docChanges()) {
          if (change.type !== "added") continue;
          const data = change.doc.data();
          added.push({
            id: change.doc.id,
            userId: data.userId,
            type: data.type as UserEventType,
            payload: data.payload,
            ...(data.audience ? { audience: data.audience as DeviceAudience } : {}),
            createdAtMs: (data.createdAt as Timestamp).toMillis(),
          });
        }
        onEvents(added);
      }, onError);
  }

  private eventData(userId: string, type: UserEventType, payload: object, nowMs: number, audience?: DeviceAudience) {
    return {
      userId,
      type,
      payload,
      ...(audience ? { audience } : {}),
      createdAt: FieldValue.serverTimestamp(),
      expiresAt: Timestamp.fromMillis(nowMs + EVENT_TTL_MS),
    };
  }
}
