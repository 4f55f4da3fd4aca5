import { createHash, randomBytes } from "node:crypto";
import { FieldPath, Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore, type Query } from "firebase-admin/firestore";
import type { SessionGuard } from "../auth/sessions";
import { AppError } from "../shared/errors";
import { COLLECTIONS, FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";
import { conversationIdOf } from "../shared/ids";
import { canAcknowledgeMessage } from "../shared/policies";
import type { RateLimitDecision } from "../shared/rate-limit";
import type { MessageRouting } from "../shared/user-events";
import { blockRefOf } from "../users/repository";
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
}

/** What a send is decided against besides what it reads: the time (read on each attempt) and the pair's rate. */
export interface SendTerms {
  now: () => Date;
  rate: SendRatePolicy;
}

const MAX_ACK_ATTEMPTS = 5;

const nonceDocId = (senderId: string, nonce: string) =>
  createHash("sha256").update(`${senderId}\n${nonce}`).digest("hex");

export class MessageRepository {
  private readonly messages;
  private readonly pairs;
  private readonly nonces;
  private readonly users;

  constructor(
    private readonly db: Firestore,
    /** Routes a stored message to the relay instances holding its receiver (relay/events.ts). */
    private readonly routing: MessageRouting,
  ) {
    this.messages = db.collection(COLLECTIONS.messages);
    this.pairs = db.collection(COLLECTIONS.pairCounters);
    this.nonces = db.collection(COLLECTIONS.nonces);
    this.users = db.collection(COLLECTIONS.users);
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
   */
  async append(draft: MessageDraft, terms: SendTerms, session?: SessionGuard): Promise<AppendResult> {
    const { senderId, messageId } = draft;
    const { receiverId } = draft.sent;
    const pairRef = this.pairs.doc(pairIdOf(senderId, receiverId));
    const nonceRef = this.nonces.doc(nonceDocId(senderId, draft.sent.nonce));
    const messageRef = this.messages.doc(messageId);
    const presenceRef = this.routing.presenceRef(receiverId);
    const refs = [pairRef, nonceRef, this.users.doc(receiverId), messageRef, presenceRef, blockRefOf(this.db, receiverId, senderId)];

    return this.db.runTransaction(async (tx) => {
      const [pair, nonce, receiver, own, presence, block, sessionSnap] = await tx.getAll(...refs, ...(session ? [session.ref] : []));
      const retryState = await this.retryState(nonce!, sessionSnap, session, (ref) => tx.get(ref));
      const now = terms.now();
      const state = {
        ...retryState,
        ownCommit: own!.data() as StoredMessage | undefined,
        pair: pair!.data() as PairCounter | undefined,
        receiverExists: receiver!.exists,
        blockedByReceiver: block!.exists,
      };
      const decision = decideSend(state, draft, now, terms.rate);
      // Thrown inside the transaction, a refusal rolls it back: nothing is written.
      if (decision.kind === "refused") throw decision.error;
      const result = appendResultOf(decision, messageId);
      if (decision.kind === "store") {
        tx.set(pairRef, decision.counter);
        tx.create(messageRef, decision.message);
        tx.create(nonceRef, decision.nonce);
        this.routing.routeMessage(tx, presence, result.record, now.getTime());
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
   * Marks a message delivered when its receiver acknowledges it. Only the receiver can, and only the
   * first acknowledgement counts: it returns the sender and the time; later ones return undefined.
   *
   * Not a transaction: a read, then a write conditional on the document being unchanged since that
   * read. Acknowledgements come as fast as messages do, and a transaction would hold its read lock on
   * the message across two round trips; under load (measured on the emulator, 100 connected users)
   * those locks queued behind each other until transactions timed out.
   */
  async markDelivered(receiverId: string, messageId: string, at: Date): Promise<{ senderId: string; deliveredAt: Date } | undefined> {
    const ref = this.messages.doc(messageId);
    // Names this acknowledgement in the document, so that a write of ours the SDK applied and then
    // retried is recognised as ours (two acknowledgements may well carry the same millisecond).
    const acknowledgementId = randomBytes(12).toString("base64url");
    for (let attempt = 1; ; attempt++) {
      const snapshot = await ref.get();
      const stored = snapshot.data() as StoredMessage | undefined;
      if (!stored || !canAcknowledgeMessage(receiverId, stored)) return undefined;
      if (stored.deliveredAt !== null) {
        return stored.acknowledgementId === acknowledgementId ? { senderId: stored.senderId, deliveredAt: at } : undefined;
      }
      try {
        await ref.update({ deliveredAt: Timestamp.fromDate(at), acknowledgementId }, { lastUpdateTime: snapshot.updateTime! });
        return { senderId: stored.senderId, deliveredAt: at };
      } catch (error) {
        // Changed since the read (another acknowledgement, on any instance): read it again.
        if (firestoreCodeOf(error) !== FIRESTORE_CODES.FAILED_PRECONDITION || attempt >= MAX_ACK_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * One page of the receiver's undelivered messages in delivery order (oldest first, so per sender in
   * ascending sequenceNumber), after `cursor` (exclusive). A connection reads its backlog page by page
   * (relay/delivery.ts), so a receiver with thousands waiting costs bounded memory.
   */
  async undeliveredPage(receiverId: string, limit: number, cursor?: DeliveryCursor): Promise<MessageRecord[]> {
    let query = this.messages
      .where("receiverId", "==", receiverId)
      .where("deliveredAt", "==", null)
      .orderBy("timestamp")
      .orderBy("sequenceNumber")
      .orderBy(FieldPath.documentId());
    if (cursor) query = query.startAfter(Timestamp.fromMillis(cursor.timestampMs), cursor.sequenceNumber, cursor.id);
    const snapshot = await query.limit(limit).get();
    return snapshot.docs.map((doc) => toMessageRecord(doc.id, doc.data() as StoredMessage));
  }

  private conversation(userA: string, userB: string): Query {
    return this.messages.where("conversationId", "==", conversationIdOf(userA, userB));
  }

  /**
   * One page of a conversation, newest first: `limit` messages after the cursor message (exclusive)
   * and `offset` skipped ones. Ordered by server time, ties by sequence number then id.
   */
  async page(userA: string, userB: string, options: { limit: number; offset: number; beforeId?: string }) {
    let query = this.conversation(userA, userB).orderBy("timestamp", "desc").orderBy("sequenceNumber", "desc");
    if (options.beforeId) {
      const cursor = await this.messages.doc(options.beforeId).get();
      const data = cursor.data() as StoredMessage | undefined;
      if (!data || data.conversationId !== conversationIdOf(userA, userB)) {
        throw new AppError("NOT_FOUND", "The `before` message is not in this conversation", { field: "before" });
      }
      query = query.startAfter(cursor);
    }
    if (options.offset > 0) query = query.offset(options.offset);
    const snapshot = await query.limit(options.limit + 1).get();
    return snapshot.docs.map((doc) => toMessageRecord(doc.id, doc.data() as StoredMessage));
  }

  async countConversation(userA: string, userB: string): Promise<number> {
    return (await this.conversation(userA, userB).count().get()).data().count;
  }
}

/** What append answers for a decision it carries out. */
function appendResultOf(decision: Exclude<SendDecision, { kind: "refused" }>, messageId: string): AppendResult {
  if (decision.kind === "retry") return { record: toMessageRecord(decision.messageId, decision.message), duplicate: true };
  return { record: toMessageRecord(messageId, decision.message), rateLimit: decision.rateLimit, duplicate: false };
}
