import { createHash, randomBytes } from "node:crypto";
import { FieldPath, FieldValue, Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore, type Query } from "firebase-admin/firestore";
import { DEVICE_IDS_FIELD, type SessionGuard } from "../auth/sessions";
import { audienceOfPending, backlogKeysOf, isPendingFor } from "../shared/device-delivery";
import { AppError } from "../shared/errors";
import { COLLECTIONS, FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";
import { conversationIdOf } from "../shared/ids";
import { canAcknowledgeExpiryNotice, canAcknowledgeMessage } from "../shared/policies";
import type { RateLimitDecision } from "../shared/rate-limit";
import type { MessageRouting } from "../shared/user-events";
import { blockRefOf } from "../users/repository";
import { canStillBeAcknowledged, decideExpiry, isExpired } from "./expiry";
import { toMessageRecord } from "./presenters";
import { pairIdOf, type MessageDraft, type MessageRecord, type StoredMessage } from "./record";
import { decideSend, type LateSendState, type NonceRecord, type PairCounter, type SendDecision, type SendRatePolicy } from "./send-decision";

/** The only door to messages, pair counters and nonce records (layout: shared/firestore.ts). */

/** A position in a receiver's delivery order: (server timestamp, sequenceNumber, id). */
export interface DeliveryCursor {
  timestampMs: number;
  sequenceNumber: number;
  id: string;
}

export function deliveryCursorOf(record: MessageRecord): DeliveryCursor {
  return { timestampMs: Date.parse(record.timestamp), sequenceNumber: record.sequenceNumber, id: record.id };
}

/** Negative, zero or positive as `a` comes before, with or after `b` in delivery order (the query's order). */
export function compareDeliveryCursors(a: DeliveryCursor, b: DeliveryCursor): number {
  if (a.timestampMs !== b.timestampMs) return a.timestampMs - b.timestampMs;
  if (a.sequenceNumber !== b.sequenceNumber) return a.sequenceNumber - b.sequenceNumber;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface AppendResult {
  record: MessageRecord;
  /** The pair's send-rate bucket after this send; absent for a retry, which takes no token. */
  rateLimit?: RateLimitDecision;
  /** The send was a retry of a message already stored (`record` is that message): nothing was written. */
  duplicate: boolean;
  /**
   * The sender had a socket on some relay instance when the message was stored (its presence document,
   * read in the same transaction): only then can another of its devices need `message_sent`.
   */
  senderConnected?: boolean;
}

/** What a send is decided against besides what it reads: the time (read on each attempt) and the pair's rate. */
export interface SendTerms {
  now: () => Date;
  rate: SendRatePolicy;
}

/** One page of a receiver's backlog: the live messages read, where the next page starts, whether it was the last. */
export interface BacklogPage {
  /** In delivery order; expired ones left out (so a page may hold fewer than its limit). */
  records: MessageRecord[];
  /** The last message read, expired or not: the next page starts after it. Absent when none was read. */
  cursor?: DeliveryCursor;
  /** Fewer than the limit were read: nothing more is waiting. */
  last: boolean;
}

/** A position in a conversation's history order, to read on from (a message's snapshot). */
export type ConversationCursor = DocumentSnapshot;

/** A `message_expired` notice, kept until its sender acknowledges it (collection messageExpiries). */
export interface ExpiryNotice {
  messageId: string;
  senderId: string;
  receiverId: string;
  /** The message's expiresAt. */
  expiredAt: Timestamp;
  /** Which sweep call wrote it: a retried transaction recognises its own earlier commit by it. */
  sweepId: string;
}

const MAX_ACK_ATTEMPTS = 5;
/** The most notices read for one connection (each acknowledged one is deleted, so the rest come next time). */
const NOTICES_PER_CONNECTION = 500;

/** An update of a document deleted meanwhile (an expired message): nothing left to change. */
const ignoreNotFound = (error: unknown) => {
  if (firestoreCodeOf(error) !== FIRESTORE_CODES.NOT_FOUND) throw error;
};

const nonceDocId = (senderId: string, nonce: string) =>
  createHash("sha256").update(`${senderId}\n${nonce}`).digest("hex");

export class MessageRepository {
  private readonly messages;
  private readonly pairs;
  private readonly nonces;
  private readonly users;
  private readonly expiries;

  constructor(
    private readonly db: Firestore,
    /** Routes a stored message to the relay instances holding its receiver (relay/events.ts). */
    private readonly routing: MessageRouting,
  ) {
    this.messages = db.collection(COLLECTIONS.messages);
    this.pairs = db.collection(COLLECTIONS.pairCounters);
    this.nonces = db.collection(COLLECTIONS.nonces);
    this.users = db.collection(COLLECTIONS.users);
    this.expiries = db.collection(COLLECTIONS.messageExpiries);
  }

  /**
   * Reads what a send is decided against, lets decideSend decide (send-decision.ts), and writes the
   * message with its pair counter, its nonce record and its routing events in one transaction: all
   * commit or none does. A refusal is thrown inside the transaction, so nothing is written. The
   * message id is minted before, so an attempt the SDK retries after it did commit finds its own message.
   *
   * The receiver's block document (users/{receiver}/blocked/{sender}) and the sender's session are read
   * in the transaction, so a block or a logout that commits first refuses the send, and one that commits
   * after finds a message that was stored before it.
   *
   * Routing: the transaction reads the receiver's presence document and writes a `message_received`
   * event into the feed of each relay instance listed there. A connection registers itself in that same
   * document (relay/presence.ts, a transaction) before it reads its backlog, and Firestore transactions
   * are serializable, so one of two things is true for every message and every connection:
   * - the registration committed first: this transaction saw the instance and routed the message to it;
   * - this transaction committed first: the message was stored before the registration, so the backlog
   *   query the connection runs after registering finds it (if still undelivered).
   * Either way an online receiver hears of the message, without a listener per user.
   *
   * Per device (CONTRACT.md "Devices"): the receiver's user document, read anyway, lists its devices;
   * the message records them as `pendingDevices` (shared/device-delivery.ts), in its one write, and the
   * routed event names them, so each instance offers the message only to those devices' sockets. A
   * device's session is created (and listed) before its socket can register, so the argument above
   * holds per device: registered first, the device is listed in the routed event; registered after,
   * its backlog query (pendingDevices contains it) finds the message.
   */
  async append(draft: MessageDraft, terms: SendTerms, session?: SessionGuard): Promise<AppendResult> {
    const { senderId, messageId } = draft;
    const { receiverId } = draft.sent;
    const pairRef = this.pairs.doc(pairIdOf(senderId, receiverId));
    const nonceRef = this.nonces.doc(nonceDocId(senderId, draft.sent.nonce));
    const messageRef = this.messages.doc(messageId);
    const presenceRef = this.routing.presenceRef(receiverId);
    // The sender's presence too: read with the rest (no extra round trip), it spares a sender with no
    // socket the read that publishing `message_sent` would cost (messages/send.ts).
    const senderPresenceRef = this.routing.presenceRef(senderId);
    const refs = [pairRef, nonceRef, this.users.doc(receiverId), messageRef, presenceRef, blockRefOf(this.db, receiverId, senderId), senderPresenceRef];

    return this.db.runTransaction(async (tx) => {
      const [pair, nonce, receiver, own, presence, block, senderPresence, sessionSnap] = await tx.getAll(...refs, ...(session ? [session.ref] : []));
      const retryState = await this.retryState(nonce!, sessionSnap, session, (ref) => tx.get(ref));
      const now = terms.now();
      const state = {
        ...retryState,
        ownCommit: own!.data() as StoredMessage | undefined,
        pair: pair!.data() as PairCounter | undefined,
        receiverExists: receiver!.exists,
        blockedByReceiver: block!.exists,
        receiverDevices: receiver!.get(DEVICE_IDS_FIELD) as string[] | undefined,
      };
      const decision = decideSend(state, draft, now, terms.rate);
      // Thrown inside the transaction, a refusal rolls it back: nothing is written.
      if (decision.kind === "refused") throw decision.error;
      const result = { ...appendResultOf(decision, messageId), senderConnected: this.routing.isConnected(senderPresence) };
      if (decision.kind === "store") {
        tx.set(pairRef, decision.counter);
        tx.create(messageRef, decision.message);
        tx.create(nonceRef, decision.nonce);
        this.routing.routeMessage(tx, presence, result.record, now.getTime(), audienceOfPending(decision.message.pendingDevices ?? []));
      }
      return result;
    });
  }

  /**
   * What a send outside the clock window is decided against (decideLateSend), read without a
   * transaction: nothing is written, and the fields compared never change.
   */
  async lateSendState(draft: MessageDraft, session?: SessionGuard): Promise<LateSendState> {
    const nonceRef = this.nonces.doc(nonceDocId(draft.senderId, draft.sent.nonce));
    const [nonce, sessionSnap] = await this.db.getAll(nonceRef, ...(session ? [session.ref] : []));
    return this.retryState(nonce!, sessionSnap, session, (ref) => ref.get());
  }

  /** The nonce record, the message it names (a send may retry it) and the session's state. */
  private async retryState(
    nonceSnap: DocumentSnapshot,
    sessionSnap: DocumentSnapshot | undefined,
    session: SessionGuard | undefined,
    read: (ref: DocumentReference) => Promise<DocumentSnapshot>,
  ): Promise<LateSendState> {
    const nonce = nonceSnap.data() as NonceRecord | undefined;
    const nonceMessage = nonce ? ((await read(this.messages.doc(nonce.messageId))).data() as StoredMessage | undefined) : undefined;
    return { sessionActive: session ? session.isActive(sessionSnap!) : true, nonce, nonceMessage };
  }

  /**
   * One device of the receiver acknowledged a message: the device leaves its `pendingDevices` (so its
   * backlog never holds the message again), and the first acknowledgement of any device also sets
   * `deliveredAt`. Only the receiver's devices can; a device that already acknowledged changes nothing.
   * Returns the sender, the time and whether this was the first acknowledgement (the sender's
   * `message_delivered` goes with that one only); undefined when nothing changed.
   *
   * Not a transaction: a read, then one write (O(1) whatever the number of devices): conditional on the
   * document being unchanged since that read while no device has acknowledged, unconditional after. Acknowledgements come as fast as messages do, and a
   * transaction would hold its read lock on the message across two round trips; under load (measured
   * on the emulator, 100 connected users) those locks queued behind each other until transactions timed out.
   */
  async markDelivered(receiverId: string, deviceId: string, messageId: string, at: Date): Promise<{ senderId: string; deliveredAt: Date; sentAt: Date; first: boolean } | undefined> {
    const ref = this.messages.doc(messageId);
    // Names this acknowledgement in the document, so that a write of ours the SDK applied and then
    // retried is recognised as ours (two acknowledgements may well carry the same millisecond).
    const acknowledgementId = randomBytes(12).toString("base64url");
    for (let attempt = 1; ; attempt++) {
      const snapshot = await ref.get();
      const stored = snapshot.data() as StoredMessage | undefined;
      if (!stored || !canAcknowledgeMessage(receiverId, stored)) return undefined;
      if (!isPendingFor(stored.pendingDevices, deviceId)) {
        return stored.acknowledgementId === acknowledgementId ? { senderId: stored.senderId, deliveredAt: at, sentAt: stored.timestamp.toDate(), first: true } : undefined;
      }
      // At or after expiresAt the message expired (undelivered, if no device acknowledged: its sender is told so): too late.
      if (!canStillBeAcknowledged(stored, at)) return undefined;
      const leave = { pendingDevices: FieldValue.arrayRemove(...backlogKeysOf(deviceId)) };
      if (stored.deliveredAt !== null) {
        // Not the first: taking itself off commutes with every other device's acknowledgement, so no
        // precondition (devices acknowledging together do not make each other retry). An update fails
        // on a deleted (expired) message; one delivered already gets no notice either way.
        await ref.update(leave).catch(ignoreNotFound);
        return undefined;
      }
      try {
        // The first: conditional on the document being unchanged since the read, so exactly one device
        // sets deliveredAt. The precondition also orders this write against the expiry sweep's
        // transaction: if the sweep deleted the message first, this fails and the re-read finds nothing;
        // if this commits first, the sweep reads a delivered message and writes no notice.
        // UNCLAIMED leaves with the first device.
        await ref.update({ ...leave, deliveredAt: Timestamp.fromDate(at), acknowledgementId }, { lastUpdateTime: snapshot.updateTime! });
        return { senderId: stored.senderId, deliveredAt: at, sentAt: stored.timestamp.toDate(), first: true };
      } catch (error) {
        // Changed since the read (another device was first, on any instance; or our own write, applied
        // and retried by the SDK) or deleted (expired): read it again.
        const code = firestoreCodeOf(error);
        const changed = code === FIRESTORE_CODES.FAILED_PRECONDITION || code === FIRESTORE_CODES.NOT_FOUND;
        if (!changed || attempt >= MAX_ACK_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * One page of one device's backlog, the receiver's messages that device has not acknowledged (its id,
   * or UNCLAIMED, in pendingDevices), in delivery order (oldest first, so per sender in ascending
   * sequenceNumber), after `cursor` (exclusive): a bounded query on one composite index
   * (firestore.indexes.json). A connection reads its backlog page by page (relay/delivery.ts), so a
   * device with thousands waiting costs bounded memory.
   *
   * Messages expired at `now` are left out of `records` but still move the cursor, so the next page
   * starts after them and `last` says only whether the query ran out: a page of expired messages is
   * not mistaken for the end of the backlog.
   */
  async undeliveredPage(receiverId: string, deviceId: string, limit: number, now: Date, cursor?: DeliveryCursor): Promise<BacklogPage> {
    let query = this.messages
      .where("receiverId", "==", receiverId)
      .where("pendingDevices", "array-contains-any", backlogKeysOf(deviceId))
      .orderBy("timestamp")
      .orderBy("sequenceNumber")
      .orderBy(FieldPath.documentId());
    if (cursor) query = query.startAfter(Timestamp.fromMillis(cursor.timestampMs), cursor.sequenceNumber, cursor.id);
    const snapshot = await query.limit(limit).get();
    const read = snapshot.docs.map((doc) => ({ id: doc.id, stored: doc.data() as StoredMessage }));
    const lastRead = read[read.length - 1];
    return {
      records: read.filter(({ stored }) => !isExpired(stored, now)).map(({ id, stored }) => toMessageRecord(id, stored)),
      cursor: lastRead ? { timestampMs: lastRead.stored.timestamp.toMillis(), sequenceNumber: lastRead.stored.sequenceNumber, id: lastRead.id } : undefined,
      last: read.length < limit,
    };
  }

  private conversation(userA: string, userB: string): Query {
    return this.messages.where("conversationId", "==", conversationIdOf(userA, userB));
  }

  /** A conversation newest first: server time, ties by sequence number then id (Firestore adds the id). */
  private history(userA: string, userB: string, after: ConversationCursor | undefined): Query {
    const query = this.conversation(userA, userB).orderBy("timestamp", "desc").orderBy("sequenceNumber", "desc");
    return after ? query.startAfter(after) : query;
  }

  /**
   * The message a history page is read from (`before`), as a cursor. It may have expired (it still
   * marks a place while its document exists); once deleted it is NOT_FOUND like any unknown id.
   */
  async conversationCursor(userA: string, userB: string, messageId: string): Promise<ConversationCursor> {
    const cursor = await this.messages.doc(messageId).get();
    const data = cursor.data() as StoredMessage | undefined;
    if (!data || data.conversationId !== conversationIdOf(userA, userB)) {
      throw new AppError("NOT_FOUND", "The `before` message is not in this conversation (or has expired)", { field: "before" });
    }
    return cursor;
  }

  /**
   * Up to `limit` messages of a conversation after `after` (newest first), expired ones included: the
   * page is assembled in history.ts. `exhausted`: the conversation has nothing older.
   */
  async conversationChunk(userA: string, userB: string, after: ConversationCursor | undefined, limit: number) {
    const snapshot = await this.history(userA, userB, after).limit(limit).get();
    const items = snapshot.docs.map((doc) => ({ id: doc.id, stored: doc.data() as StoredMessage, cursor: doc as ConversationCursor }));
    return { items, exhausted: items.length < limit };
  }

  /**
   * The same, projected to the fields that order and expire a message: for skipping `offset` messages
   * without transferring their ciphertext.
   */
  async conversationPositions(userA: string, userB: string, after: ConversationCursor | undefined, limit: number) {
    const snapshot = await this.history(userA, userB, after).select("timestamp", "sequenceNumber", "expiresAt").limit(limit).get();
    const items = snapshot.docs.map((doc) => ({ expiresAt: doc.get("expiresAt") as Timestamp | undefined, cursor: doc as ConversationCursor }));
    return { items, exhausted: items.length < limit };
  }

  /**
   * The conversation's messages not expired at `now`: all of them, minus those whose expiresAt has
   * passed but whose document is not deleted yet (the sweep and the TTL policy lag).
   */
  async countConversation(userA: string, userB: string, now: Date): Promise<number> {
    const conversation = this.conversation(userA, userB);
    const [all, expired] = await Promise.all([
      conversation.count().get(),
      conversation.where("expiresAt", "<=", Timestamp.fromDate(now)).count().get(),
    ]);
    return Math.max(0, all.data().count - expired.data().count);
  }

  /**
   * Up to `limit` ids of messages expired at `now` that no receiver acknowledged: the ones whose expiry
   * the sender must be told of (expiry-sweep.ts). Oldest expiry first.
   */
  async expiredUndeliveredIds(now: Date, limit: number): Promise<string[]> {
    const snapshot = await this.messages
      .where("deliveredAt", "==", null)
      .where("expiresAt", "<=", Timestamp.fromDate(now))
      .orderBy("expiresAt")
      .select()
      .limit(limit)
      .get();
    return snapshot.docs.map((doc) => doc.id);
  }

  /**
   * Up to `limit` ids of every message expired at `now`, delivered or not. Only where no TTL policy
   * runs (the emulator: the local stack and tests); in production the TTL policy deletes delivered ones,
   * and this query's single-field index on expiresAt is not declared (firestore.indexes.json).
   */
  async expiredIds(now: Date, limit: number): Promise<string[]> {
    const snapshot = await this.messages.where("expiresAt", "<=", Timestamp.fromDate(now)).orderBy("expiresAt").select().limit(limit).get();
    return snapshot.docs.map((doc) => doc.id);
  }

  /**
   * Deletes the given messages if they are expired at `now` (decideExpiry, on what this transaction
   * read), and writes a `message_expired` notice for each that was never acknowledged, in one
   * transaction: several sweepers (relay instances, the scheduled function) may find the same message,
   * and only the one whose transaction commits first deletes it and writes its notice. Returns the
   * notices written and how many messages were deleted. `sweepId` is minted by the caller, outside
   * the transaction: an attempt the SDK retries after it did commit finds the messages gone and its own
   * notices there, and returns them.
   */
  async expire(messageIds: string[], now: Date, sweepId: string): Promise<{ deleted: number; notices: ExpiryNotice[] }> {
    if (messageIds.length === 0) return { deleted: 0, notices: [] };
    const messageRefs = messageIds.map((id) => this.messages.doc(id));
    const noticeRefs = messageIds.map((id) => this.expiries.doc(id));
    return this.db.runTransaction(async (tx) => {
      const snapshots = await tx.getAll(...messageRefs, ...noticeRefs);
      const written: ExpiryNotice[] = [];
      let deleted = 0;
      messageIds.forEach((messageId, index) => {
        const stored = snapshots[index]!.data() as StoredMessage | undefined;
        const existing = snapshots[messageIds.length + index]!.data() as ExpiryNotice | undefined;
        const outcome = decideExpiry(stored, existing, now, sweepId);
        if (outcome === "ours") written.push(existing!);
        if (outcome === "gone" || outcome === "ours") return;
        tx.delete(messageRefs[index]!);
        deleted += 1;
        if (outcome === "delete-and-notify") {
          const notice: ExpiryNotice = { messageId, senderId: stored!.senderId, receiverId: stored!.receiverId, expiredAt: stored!.expiresAt!, sweepId };
          tx.create(noticeRefs[index]!, notice);
          written.push(notice);
        }
      });
      return { deleted, notices: written };
    });
  }

  /** The `message_expired` notices a sender has not acknowledged yet, oldest expiry first. */
  async expiryNoticesFor(senderId: string): Promise<ExpiryNotice[]> {
    const snapshot = await this.expiries.where("senderId", "==", senderId).limit(NOTICES_PER_CONNECTION).get();
    return snapshot.docs.map((doc) => doc.data() as ExpiryNotice).sort((a, b) => a.expiredAt.toMillis() - b.expiredAt.toMillis());
  }

  /** The sender acknowledged a `message_expired` notice: it is deleted, never sent again. Anyone else's ack changes nothing. */
  async acknowledgeExpiryNotice(senderId: string, messageId: string): Promise<boolean> {
    const ref = this.expiries.doc(messageId);
    const snapshot = await ref.get();
    const notice = snapshot.data() as ExpiryNotice | undefined;
    if (!notice || !canAcknowledgeExpiryNotice(senderId, notice)) return false;
    try {
      await ref.delete({ lastUpdateTime: snapshot.updateTime! });
    } catch (error) {
      // Deleted by another socket's acknowledgement in between: that one counted.
      if (firestoreCodeOf(error) !== FIRESTORE_CODES.FAILED_PRECONDITION && firestoreCodeOf(error) !== FIRESTORE_CODES.NOT_FOUND) throw error;
      return false;
    }
    return true;
  }
}

/** What append answers for a decision it carries out. */
function appendResultOf(decision: Exclude<SendDecision, { kind: "refused" }>, messageId: string): AppendResult {
  if (decision.kind === "retry") return { record: toMessageRecord(decision.messageId, decision.message), duplicate: true };
  return { record: toMessageRecord(messageId, decision.message), rateLimit: decision.rateLimit, duplicate: false };
}
