import { FieldValue, Timestamp, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { COLLECTIONS } from "../shared/firestore";

/**
 * Short-lived events for a user (typing, presence changes, delivery receipts, session revocations),
 * carried through Firestore to whichever relay instances hold that user's sockets.
 *
 * An event is addressed to the instances listed in the user's presence document, so each relay
 * instance needs one listener for all its users' events (not one per user). A user with no socket
 * anywhere gets nothing written: these events only matter to someone connected now. Durable things
 * (messages, key exchanges) are not events: they are read from their own collections until acknowledged.
 */
export type UserEventType =
  | "typing_indicator"
  | "user_online"
  | "user_offline"
  | "message_delivered"
  | "key_exchange_request"
  | "key_exchange_response"
  | "session_revoked";

export interface UserEvent {
  id: string;
  userId: string;
  type: UserEventType;
  payload: Record<string, unknown>;
  /** Server time of the write. */
  createdAtMs: number;
}

const EVENT_TTL_MS = 60 * 60 * 1000;
/** Firestore batches hold at most 500 writes. */
const BATCH_SIZE = 450;

export class UserEvents {
  private readonly events;
  private readonly presence;

  constructor(
    private readonly db: Firestore,
    private readonly clock: Clock,
  ) {
    this.events = db.collection(COLLECTIONS.relayEvents);
    this.presence = db.collection(COLLECTIONS.presence);
  }

  async publish(userId: string, type: UserEventType, payload: Record<string, unknown>): Promise<void> {
    await this.publishToMany([userId], type, payload);
  }

  /** The same event for many users (presence fan-out): one write per (user, instance holding them). */
  async publishToMany(userIds: string[], type: UserEventType, payload: Record<string, unknown>): Promise<void> {
    if (userIds.length === 0) return;
    const presence = await this.db.getAll(...userIds.map((id) => this.presence.doc(id)));
    const writes: Array<{ userId: string; instanceId: string }> = [];
    presence.forEach((doc, index) => {
      for (const instanceId of Object.keys((doc.get("instances") as Record<string, boolean> | undefined) ?? {})) {
        writes.push({ userId: userIds[index]!, instanceId });
      }
    });
    const expiresAt = Timestamp.fromMillis(this.clock.now().getTime() + EVENT_TTL_MS);
    for (let start = 0; start < writes.length; start += BATCH_SIZE) {
      const batch = this.db.batch();
      for (const { userId, instanceId } of writes.slice(start, start + BATCH_SIZE)) {
        batch.create(this.events.doc(), { instanceId, userId, type, payload, createdAt: FieldValue.serverTimestamp(), expiresAt });
      }
      await batch.commit();
    }
  }

  /**
   * Calls `onEvents` with each snapshot's new events addressed to this instance from `sinceMs` on, in
   * creation order (the first call may have none). Returns the function that stops listening.
   */
  listenForInstance(instanceId: string, sinceMs: number, onEvents: (events: UserEvent[]) => void, onError: (error: Error) => void): () => void {
    return this.events
      .where("instanceId", "==", instanceId)
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
            createdAtMs: (data.createdAt as Timestamp).toMillis(),
          });
        }
        onEvents(added);
      }, onError);
  }
}
