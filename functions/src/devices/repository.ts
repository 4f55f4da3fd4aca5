import type { Firestore, QueryDocumentSnapshot } from "firebase-admin/firestore";
import type { SessionGuard } from "../auth/sessions";
import { COLLECTIONS } from "../shared/firestore";
import {
  decideAcknowledge,
  decideAnswer,
  decideRead,
  linkRequestNotFound,
  canSeeLinkRequest,
  type DeviceCaller,
  type LinkAnswer,
  type LinkApproval,
  type LinkRequest,
  type StoredLinkRequest,
} from "./link-request";

/** Requests read per query: pending ones of an account, owed answers of a device (both rate-limited to few). */
const QUERY_LIMIT = 50;

const toRequest = (doc: QueryDocumentSnapshot): LinkRequest => ({ id: doc.id, ...(doc.data() as StoredLinkRequest) });

/** The only door to device link requests (layout: shared/firestore.ts). */
export class LinkRequestRepository {
  private readonly requests;

  constructor(private readonly db: Firestore) {
    this.requests = db.collection(COLLECTIONS.deviceLinkRequests);
  }

  /** The id is minted by the caller, outside any transaction: a retried create finds its own document. */
  async create(id: string, request: StoredLinkRequest): Promise<void> {
    const ref = this.requests.doc(id);
    await this.db.runTransaction(async (tx) => {
      if ((await tx.get(ref)).exists) return;
      tx.create(ref, request);
    });
  }

  /**
   * Records an approval or a rejection, as decideAnswer decides; a refusal is thrown and nothing written.
   * `requesterSession` guards the asking device's session, read in the same transaction, so a device
   * removed (or logged out) before the answer never gets one.
   */
  async answer(id: string, caller: DeviceCaller, answer: LinkAnswer, requesterSession: (request: LinkRequest) => SessionGuard): Promise<LinkRequest> {
    const ref = this.requests.doc(id);
    return this.db.runTransaction(async (tx) => {
      const snapshot = await tx.get(ref);
      const request = snapshot.exists ? { id, ...(snapshot.data() as StoredLinkRequest) } : undefined;
      let requesterSignedIn = true;
      if (request && canSeeLinkRequest(caller, request) && request.status === "pending") {
        const guard = requesterSession(request);
        requesterSignedIn = guard.isActive(await tx.get(guard.ref));
      }
      const decision = decideAnswer(request, caller, answer, requesterSignedIn);
      if (decision.kind === "refused") throw decision.error;
      if (decision.kind === "answered") return request!;
      tx.update(ref, decision.update);
      return { ...request!, ...decision.update };
    });
  }

  /**
   * One request as a device of its account reads it (404 to anyone else), with the approval if the caller
   * is the requester; the payload is deleted in the same transaction (decideRead).
   */
  async read(id: string, caller: DeviceCaller, now: Date): Promise<{ request: LinkRequest; approval: LinkApproval | null }> {
    const ref = this.requests.doc(id);
    // An attempt that committed took the payload; if the SDK retries it, the retry finds it gone and
    // answers what the first attempt read.
    let taken: LinkApproval | null = null;
    return this.db.runTransaction(async (tx) => {
      const snapshot = await tx.get(ref);
      const request = snapshot.exists ? { id, ...(snapshot.data() as StoredLinkRequest) } : undefined;
      if (!request || !canSeeLinkRequest(caller, request)) throw linkRequestNotFound();
      const { approval, update } = decideRead(request, caller, now);
      if (approval) taken = approval;
      if (update) tx.update(ref, update);
      return { request: { ...request, ...update }, approval: approval ?? taken };
    });
  }

  /** The account's pending requests (expired ones included: the caller filters by time). */
  async pendingFor(userId: string): Promise<LinkRequest[]> {
    const snapshot = await this.requests.where("userId", "==", userId).where("status", "==", "pending").limit(QUERY_LIMIT).get();
    return snapshot.docs.map(toRequest);
  }

  /** Answers the requester device has not acknowledged yet. */
  async owedTo(deviceId: string): Promise<LinkRequest[]> {
    const snapshot = await this.requests.where("requesterDeviceId", "==", deviceId).where("answerOwed", "==", true).limit(QUERY_LIMIT).get();
    return snapshot.docs.map(toRequest);
  }

  /** The requester device has the answer: no longer owed, payload deleted. False when nothing changed. */
  async acknowledge(id: string, caller: DeviceCaller): Promise<boolean> {
    const ref = this.requests.doc(id);
    return this.db.runTransaction(async (tx) => {
      const snapshot = await tx.get(ref);
      const update = decideAcknowledge(snapshot.data() as StoredLinkRequest | undefined, caller);
      if (!update) return false;
      tx.update(ref, update);
      return true;
    });
  }

  /** Deletes the payloads of expired requests found by a read (the TTL policy deletes the documents later). */
  async forgetExpiredPayloads(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const batch = this.db.batch();
    for (const id of ids) batch.update(this.requests.doc(id), { approval: null, answerOwed: false });
    await batch.commit();
  }
}
