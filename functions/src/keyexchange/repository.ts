import { FieldValue, Timestamp, type Firestore, type QueryDocumentSnapshot } from "firebase-admin/firestore";
import { DEVICE_IDS_FIELD } from "../auth/sessions";
import { backlogKeysOf, isPendingFor, pendingDevicesFor } from "../shared/device-delivery";
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
  /** When the first of the target's devices acknowledged key_exchange_request. */
  requestDeliveredAt: Timestamp | null;
  /** When the first of the initiator's devices acknowledged key_exchange_response. */
  responseDeliveredAt: Timestamp | null;
  /**
   * The target's devices that have not acknowledged key_exchange_request: the target's device list when
   * the exchange was created (shared/device-delivery.ts); each device's acknowledgement removes it, and
   * each device is sent the request on its connections until then. Absent on exchanges from before devices.
   */
  requestPendingDevices?: string[];
  /** The same for key_exchange_response and the initiator's devices, recorded when the target responds. */
  responsePendingDevices?: string[];
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

  /**
   * Creates the exchange and supersedes the pair's older pending ones, in one transaction, which also
   * records the target's devices as the ones owed the request. Returns the exchange as stored.
   */
  async create(id: string, exchange: StoredExchange): Promise<StoredExchange> {
    const ref = this.exchanges.doc(id);
    const targetRef = this.db.collection(COLLECTIONS.users).doc(exchange.targetId);
    const olderPending = this.exchanges.where("pairKey", "==", exchange.pairKey).where("status", "==", "pending");
    return this.db.runTransaction(async (tx) => {
      const [existing, older, target] = await Promise.all([tx.get(ref), tx.get(olderPending), tx.get(targetRef)]);
      if (existing.exists) return existing.data() as StoredExchange; // a retry of an attempt that committed
      for (const doc of older.docs) tx.update(doc.ref, { status: "superseded", supersededBy: id });
      const stored = { ...exchange, requestPendingDevices: pendingDevicesFor(target.get(DEVICE_IDS_FIELD) as string[] | undefined) };
      tx.create(ref, stored);
      return stored;
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
      // The initiator's devices now are the ones owed the response.
      const initiator = await tx.get(this.db.collection(COLLECTIONS.users).doc(exchange!.initiatorId));
      const update = { ...decision.update, responsePendingDevices: pendingDevicesFor(initiator.get(DEVICE_IDS_FIELD) as string[] | undefined) };
      tx.update(ref, update);
      return { ...exchange!, ...update };
    });
  }

  /** Exchanges waiting for the user's response, and the user's own waiting for the other side. */
  async pendingFor(userId: string): Promise<{ incoming: Exchange[]; outgoing: Exchange[] }> {
    const pending = (field: "targetId" | "initiatorId") =>
      this.exchanges.where(field, "==", userId).where("status", "==", "pending").orderBy("createdAt").limit(100).get();
    const [incoming, outgoing] = await Promise.all([pending("targetId"), pending("initiatorId")]);
    return { incoming: incoming.docs.map(toExchange), outgoing: outgoing.docs.map(toExchange) };
  }

  /** What the relay still owes one device of the user: requests to answer and responses to read, unacknowledged by that device. */
  async undeliveredFor(userId: string, deviceId: string): Promise<{ requests: Exchange[]; responses: Exchange[] }> {
    const owed = backlogKeysOf(deviceId);
    const [requests, responses] = await Promise.all([
      this.exchanges.where("targetId", "==", userId).where("status", "==", "pending").where("requestPendingDevices", "array-contains-any", owed).limit(100).get(),
      this.exchanges.where("initiatorId", "==", userId).where("status", "==", "completed").where("responsePendingDevices", "array-contains-any", owed).limit(100).get(),
    ]);
    return { requests: requests.docs.map(toExchange), responses: responses.docs.map(toExchange) };
  }

  /**
   * Records that one device acknowledged the request (a device of the target) or the response (of the
   * initiator): it is no longer owed it; the first device's acknowledgement also sets `…DeliveredAt`.
   */
  async markDelivered(id: string, userId: string, deviceId: string, what: "request" | "response", at: Date): Promise<boolean> {
    const ref = this.exchanges.doc(id);
    return this.db.runTransaction(async (tx) => {
      const exchange = (await tx.get(ref)).data() as StoredExchange | undefined;
      if (!exchange || !canAcknowledgeExchangeNotice(userId, exchange, what)) return false;
      if (!isPendingFor(exchange[`${what}PendingDevices`], deviceId)) return false;
      tx.update(ref, {
        [`${what}PendingDevices`]: FieldValue.arrayRemove(...backlogKeysOf(deviceId)),
        ...(exchange[`${what}DeliveredAt`] === null ? { [`${what}DeliveredAt`]: Timestamp.fromDate(at) } : {}),
      });
      return true;
    });
  }
}
