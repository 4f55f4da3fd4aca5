import { Timestamp, type Firestore, type QueryDocumentSnapshot } from "firebase-admin/firestore";
import { COLLECTIONS } from "../shared/firestore";
import { canAcknowledgeExchangeNotice } from "../shared/policies";
import { decideResponse, type ExchangeResponse } from "./state-machine";

/** The only door to key exchanges (layout: shared/firestore.ts). */

export type StoredStatus = "pending" | "completed" | "superseded";
/** What clients see: a pending exchange past its expiry is "expired". */
export type ExchangeStatus = StoredStatus | "expired";

export interface StoredExchange {
  initiatorId: string;
  targetId: string;
  /** Both user ids sorted and joined: one pair, either direction. */
  pairKey: string;
  status: StoredStatus;
  initiatorEphemeralPublicKey: string;
  initiatorSignature: string;
  targetEphemeralPublicKey: string | null;
  targetSignature: string | null;
  createdAt: Timestamp;
  expiresAt: Timestamp;
  completedAt: Timestamp | null;
  supersededBy: string | null;
  /** When the target acknowledged key_exchange_request (null: send it on the target's next connection). */
  requestDeliveredAt: Timestamp | null;
  /** When the initiator acknowledged key_exchange_response. */
  responseDeliveredAt: Timestamp | null;
}

export interface Exchange extends StoredExchange {
  id: string;
}

const toExchange = (doc: QueryDocumentSnapshot): Exchange => ({ id: doc.id, ...(doc.data() as StoredExchange) });

export class KeyExchangeRepository {
  private readonly exchanges;

  constructor(private readonly db: Firestore) {
    this.exchanges = db.collection(COLLECTIONS.keyExchanges);
  }

  /** Creates the exchange and supersedes the pair's older pending ones, in one transaction. */
  async create(id: string, exchange: StoredExchange): Promise<void> {
    const ref = this.exchanges.doc(id);
    const olderPending = this.exchanges.where("pairKey", "==", exchange.pairKey).where("status", "==", "pending");
    await this.db.runTransaction(async (tx) => {
      const [existing, older] = await Promise.all([tx.get(ref), tx.get(olderPending)]);
      if (existing.exists) return; // a retry of an attempt that committed
      for (const doc of older.docs) tx.update(doc.ref, { status: "superseded", supersededBy: id });
      tx.create(ref, exchange);
    });
  }

  async find(id: string): Promise<Exchange | undefined> {
    const snapshot = await this.exchanges.doc(id).get();
    return snapshot.exists ? { id, ...(snapshot.data() as StoredExchange) } : undefined;
  }

  /**
   * Records the target's response, as decideResponse decides (state-machine.ts): a refusal is thrown
   * inside the transaction, so nothing is written. Returns the completed exchange.
   */
  async complete(id: string, responderId: string, response: ExchangeResponse): Promise<Exchange> {
    const ref = this.exchanges.doc(id);
    return this.db.runTransaction(async (tx) => {
      const snapshot = await tx.get(ref);
      const exchange = snapshot.exists ? { id, ...(snapshot.data() as StoredExchange) } : undefined;
      const decision = decideResponse(exchange, responderId, response);
      if (decision.kind === "refused") throw decision.error;
      if (decision.kind === "completed") return exchange!;
      tx.update(ref, decision.update);
      return { ...exchange!, ...decision.update };
    });
  }

  /** Exchanges waiting for the user's response, and the user's own waiting for the other side. */
  async pendingFor(userId: string): Promise<{ incoming: Exchange[]; outgoing: Exchange[] }> {
    const pending = (field: "targetId" | "initiatorId") =>
      this.exchanges.where(field, "==", userId).where("status", "==", "pending").orderBy("createdAt").limit(100).get();
    const [incoming, outgoing] = await Promise.all([pending("targetId"), pending("initiatorId")]);
    return { incoming: incoming.docs.map(toExchange), outgoing: outgoing.docs.map(toExchange) };
  }

  /** What the relay still owes the user: requests to answer and responses to read, unacknowledged. */
  async undeliveredFor(userId: string): Promise<{ requests: Exchange[]; responses: Exchange[] }> {
    const [requests, responses] = await Promise.all([
      this.exchanges.where("targetId", "==", userId).where("status", "==", "pending").where("requestDeliveredAt", "==", null).limit(100).get(),
      this.exchanges.where("initiatorId", "==", userId).where("status", "==", "completed").where("responseDeliveredAt", "==", null).limit(100).get(),
    ]);
    return { requests: requests.docs.map(toExchange), responses: responses.docs.map(toExchange) };
  }

  /** Records that the request (to the target) or the response (to the initiator) was acknowledged. */
  async markDelivered(id: string, userId: string, what: "request" | "response", at: Date): Promise<boolean> {
    const ref = this.exchanges.doc(id);
    return this.db.runTransaction(async (tx) => {
      const exchange = (await tx.get(ref)).data() as StoredExchange | undefined;
      if (!exchange || !canAcknowledgeExchangeNotice(userId, exchange, what)) return false;
      tx.update(ref, { [`${what}DeliveredAt`]: Timestamp.fromDate(at) });
      return true;
    });
  }
}
