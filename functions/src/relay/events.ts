import { FieldValue, Timestamp, type Firestore, type Transaction } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { COLLECTIONS } from "../shared/firestore";

/**
 * Short-lived events addressed to one user, written to Firestore so that whichever relay instance
 * holds that user's sockets picks them up (typing, presence changes, delivery receipts, session
 * revocations). Durable things (messages, key exchanges) are not events: they are read from their own
 * collections until acknowledged.
 */
export type UserEventType =
  | "typing_indicator"
  | "user_online"
  | "user_offline"
  | "message_delivered"
  | "session_revoked";

export interface UserEvent {
  id: string;
  userId: string;
  type: UserEventType;
  payload: Record<string, unknown>;
}

/** Events are only for users connected now; anything older than this is of no use to anyone. */
const EVENT_TTL_MS = 60 * 60 * 1000;
/** Firestore batches hold at most 500 writes. */
const BATCH_SIZE = 450;

export class UserEvents {
  private readonly events;

  constructor(
    private readonly db: Firestore,
    private readonly clock: Clock,
  ) {
    this.events = db.collection(COLLECTIONS.userEvents);
  }

  private document(userId: string, type: UserEventType, payload: Record<string, unknown>) {
    return {
      userId,
      type,
      payload,
      createdAt: FieldValue.serverTimestamp(),
      expiresAt: Timestamp.fromMillis(this.clock.now().getTime() + EVENT_TTL_MS),
    };
  }

  async publish(userId: string, type: UserEventType, payload: Record<string, unknown>): Promise<void> {
    await this.events.add(this.document(userId, type, payload));
  }

  /** The same event for many users (presence fan-out), in batches. */
  async publishToMany(userIds: string[], type: UserEventType, payload: Record<string, unknown>): Promise<void> {
    for (let start = 0; start < userIds.length; start += BATCH_SIZE) {
      const batch = this.db.batch();
      for (const userId of userIds.slice(start, start + BATCH_SIZE)) {
        batch.create(this.events.doc(), this.document(userId, type, payload));
      }
      await batch.commit();
    }
  }

  /** Inside a caller's transaction, so the event exists exactly when the change it reports does. */
  publishInTransaction(tx: Transaction, userId: string, type: UserEventType, payload: Record<string, unknown>): void {
    tx.create(this.events.doc(), this.document(userId, type, payload));
  }

  /**
   * Calls `onEvent` for each event addressed to `userId` created from `sinceMs` on, in creation order.
   * Returns the function that stops listening.
   */
  listen(userId: string, sinceMs: number, onEvent: (event: UserEvent) => void, onError: (error: Error) => void): () => void {
    return this.events
      .where("userId", "==", userId)
      .where("createdAt", ">=", Timestamp.fromMillis(sinceMs))
      .orderBy("createdAt")
      .onSnapshot((snapshot) => {
        for (const change of snapshot.docChanges()) {
          if (change.type !== "added") continue;
          const data = change.doc.data();
          onEvent({ id: change.doc.id, userId, type: data.type as UserEventType, payload: data.payload });
        }
      }, onError);
  }
}
