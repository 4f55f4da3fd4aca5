import { Timestamp, type Firestore } from "firebase-admin/firestore";
import { COLLECTIONS, FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";

/**
 * `key_changed` notices: a contact of a user whose identity key changed is told, durably until the
 * contact acknowledges (the relay reads the unacknowledged ones on every connection). One document per
 * (recipient, user): a second change before the acknowledgement replaces the first, since only the
 * newest key matters.
 */
export interface KeyChangeNotice {
  recipientId: string;
  userId: string;
  publicKey: string;
  version: number;
  changedAt: Timestamp;
}

/** Notices read per connection (a user with more gets the rest on the next one). */
const NOTICES_PER_CONNECTION = 200;
/** Firestore's writes per batch, with room to spare. */
const BATCH_WRITES = 450;

export class KeyChangeNotices {
  private readonly notices;

  constructor(private readonly db: Firestore) {
    this.notices = db.collection(COLLECTIONS.keyChangeNotices);
  }

  private ref(recipientId: string, userId: string) {
    return this.notices.doc(`${recipientId}__${userId}`);
  }

  /** Writes one notice per recipient (idempotent: the same change written twice is one notice). */
  async record(recipientIds: string[], change: { userId: string; publicKey: string; version: number; changedAt: Date }): Promise<void> {
    for (let start = 0; start < recipientIds.length; start += BATCH_WRITES) {
      const batch = this.db.batch();
      for (const recipientId of recipientIds.slice(start, start + BATCH_WRITES)) {
        const notice: KeyChangeNotice = { recipientId, ...change, changedAt: Timestamp.fromDate(change.changedAt) };
        batch.set(this.ref(recipientId, change.userId), notice);
      }
      await batch.commit();
    }
  }

  async noticesFor(recipientId: string): Promise<KeyChangeNotice[]> {
    const snapshot = await this.notices.where("recipientId", "==", recipientId).limit(NOTICES_PER_CONNECTION).get();
    return snapshot.docs.map((doc) => doc.data() as KeyChangeNotice).sort((a, b) => a.changedAt.toMillis() - b.changedAt.toMillis());
  }

  /** The recipient acknowledged the notice of `publicKey`: deleted, unless a newer change replaced it meanwhile. */
  async acknowledge(recipientId: string, userId: string, publicKey: string): Promise<void> {
    const ref = this.ref(recipientId, userId);
    const snapshot = await ref.get();
    if (!snapshot.exists || snapshot.get("publicKey") !== publicKey) return;
    try {
      await ref.delete({ lastUpdateTime: snapshot.updateTime! });
    } catch (error) {
      // Replaced or deleted in between: the newer notice stays for its own acknowledgement.
      if (firestoreCodeOf(error) !== FIRESTORE_CODES.FAILED_PRECONDITION && firestoreCodeOf(error) !== FIRESTORE_CODES.NOT_FOUND) throw error;
    }
  }
}
