import { createHash, randomBytes } from "node:crypto";
import { FieldPath, Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore, type Query } from "firebase-admin/firestore";
import { AppError, errors } from "../shared/errors";
import { COLLECTIONS, FIRESTORE_CODES, firestoreCodeOf } from "../shared/firestore";
import { conversationIdOf } from "../shared/ids";
import type { SessionGuard } from "../auth/sessions";
import { enforce, takeToken, type RateLimitDecision } from "../shared/rate-limit";
import type { MessageRouting } from "../shared/user-events";
import { pairIdOf, toMessageRecord, type MessageRecord, type StoredMessage } from "./record";
import { blockRefOf } from "../users/repository";
import { isRetryOf } from "./retry";
import { sequenceNumberFor } from "./sequence";

/** The only door to messages, pair counters and nonce records (layout: shared/firestore.ts). */

export interface MessageDraft {
  /** Minted before the transaction, so a retried attempt can recognise its own earlier commit. */
  messageId: string;
  senderId: string;
  receiverId: string;
  encryptedContent: string;
  iv: string;
  authTag: string;
  nonce: string;
  signature: string;
  messageType: string;
  clientTimestamp: string;
  /** What the client asked for; absent means "the next one". */
  requestedSequence?: number;
}

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

export interface SendRatePolicy {
  burst: number;
  refillPerSecond: number;
}

/** The pair counter document: the last number used, and the pair's send-rate bucket. */
interface PairCounter {
  lastSequence: number;
  lastTimestampMs: number;
  tokens: number;
  tokensAtMs: number;
}

/** The nonce record: which message used the nonce, remembered until expiresAt. */
interface NonceRecord {
  senderId: string;
  messageId: string;
  expiresAt: Timestamp;
}

export interface AppendResult {
  record: MessageRecord;
  /** The pair's send-rate bucket after this send; absent for a retry, which takes no token. */
  rateLimit?: RateLimitDecision;
  /** The send was a retry of a message already stored (`record` is that message): nothing was written. */
  duplicate: boolean;
}

type Read = (ref: DocumentReference) => Promise<DocumentSnapshot>;

const MAX_ACK_ATTEMPTS = 5;

/**
 * How long a nonce is remembered, from the message's storage: past this, the timestamp window refuses a
 * replay anyway. It is also how long a retry of the message is recognised (and answered as one).
 */
export const NONCE_RETENTION_MS = 15 * 60 * 1000;

const nonceDocId = (senderId: string, nonce: string) =>
  createHash("sha256").update(`${senderId}\n${nonce}`).digest("hex");

/** The pair's send-rate bucket, as the shared token bucket sees it (a burst, refilled at a steady rate). */
function takeSendToken(pair: PairCounter | undefined, nowMs: number, rate: SendRatePolicy) {
  const policy = { limit: rate.burst, windowSeconds: rate.burst / rate.refillPerSecond };
  const bucket = pair ? { tokens: pair.tokens, updatedAtMs: pair.tokensAtMs } : undefined;
  const { state, decision } = takeToken(bucket, nowMs, policy);
  return { tokens: state.tokens, decision };
}

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
   * Stores one message in one transaction with its pair counter, its nonce record and its routing
   * events: all commit or none does. Every refusal (ended session, unknown receiver, a block by the
   * receiver, replayed nonce or sequence number, sequence number out of bounds, rate) throws before
   * anything is written. A retry of a message already stored (see isRetryOf) writes nothing and answers
   * that message, before the rate and every other check but the session's: a block is checked after
   * it, since the retried message was stored before the block (and stays in history) and answering it
   * again stores nothing and tells the sender nothing new.
   *
   * The receiver's block document (users/{receiver}/blocked/{sender}) is read in the transaction, so a
   * block that commits first refuses the send, and one that commits after finds a message that was
   * stored before it.
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
  async append(draft: MessageDraft, now: () => Date, rate: SendRatePolicy, session?: SessionGuard): Promise<AppendResult> {
    const pairRef = this.pairs.doc(pairIdOf(draft.senderId, draft.receiverId));
    const nonceRef = this.nonces.doc(nonceDocId(draft.senderId, draft.nonce));
    const receiverRef = this.users.doc(draft.receiverId);
    const messageRef = this.messages.doc(draft.messageId);
    const presenceRef = this.routing.presenceRef(draft.receiverId);
    const blockRef = blockRefOf(this.db, draft.receiverId, draft.senderId);

    return this.db.runTransaction(async (tx) => {
      // The sender's session is read with the rest, so the message is stored only if it is active now.
      const refs = [pairRef, nonceRef, receiverRef, messageRef, presenceRef, blockRef, ...(session ? [session.ref] : [])];
      const [pairSnap, nonceSnap, receiverSnap, existing, presenceSnap, blockSnap, sessionSnap] = await tx.getAll(...refs);
      const nowMs = now().getTime();
      const pair = pairSnap!.data() as PairCounter | undefined;

      // The SDK may retry an attempt that did commit: finding our own message means it is stored.
      if (existing!.exists) {
        const { decision } = takeSendToken(pair, nowMs, rate);
        return { record: toMessageRecord(draft.messageId, existing!.data() as StoredMessage), rateLimit: decision, duplicate: false };
      }
      if (session) session.assertActive(sessionSnap!);
      // The client's earlier attempt was stored but its answer lost: answer it again, store nothing.
      const original = await this.retried(nonceSnap!, draft, nowMs, (ref) => tx.get(ref));
      if (original) return { record: original, duplicate: true };
      if (!receiverSnap!.exists) throw new AppError("NOT_FOUND", "Receiver not found", { field: "receiverId" });
      if (blockSnap!.exists) throw errors.blocked();

      const { tokens, decision } = takeSendToken(pair, nowMs, rate);
      enforce(decision);
      if (nonceSnap!.exists) {
        throw new AppError("REPLAY_DETECTED", "This nonce was already used", { field: "nonce" });
      }
      const lastSequence = pair?.lastSequence ?? 0;
      const sequenceNumber = sequenceNumberFor(draft.requestedSequence, lastSequence);
      // Server time, but never earlier than the pair's previous message (clocks of instances differ):
      // ordering by timestamp then agrees with sequenceNumber.
      const timestampMs = Math.max(nowMs, pair?.lastTimestampMs ?? 0);

      const stored: StoredMessage = {
        senderId: draft.senderId,
        receiverId: draft.receiverId,
        conversationId: conversationIdOf(draft.senderId, draft.receiverId),
        encryptedContent: draft.encryptedContent,
        iv: draft.iv,
        authTag: draft.authTag,
        nonce: draft.nonce,
        signature: draft.signature,
        messageType: draft.messageType,
        sequenceNumber,
        timestamp: Timestamp.fromMillis(timestampMs),
        clientTimestamp: draft.clientTimestamp,
        deliveredAt: null,
      };
      const counter: PairCounter = { lastSequence: sequenceNumber, lastTimestampMs: timestampMs, tokens, tokensAtMs: nowMs };
      tx.set(pairRef, counter);
      tx.create(messageRef, stored);
      tx.create(nonceRef, {
        senderId: draft.senderId,
        messageId: draft.messageId,
        expiresAt: Timestamp.fromMillis(nowMs + NONCE_RETENTION_MS),
      });
      const record = toMessageRecord(draft.messageId, stored);
      this.routing.routeMessage(tx, presenceSnap, record, nowMs);
      return { record, rateLimit: decision, duplicate: false };
    });
  }

  /**
   * The stored message `draft` retries, read without a transaction (nothing is written, and the fields
   * compared never change): for a send whose client timestamp has left the clock window, which can
   * only be answered as a retry. `session`, when given, must be active.
   */
  async findRetry(draft: MessageDraft, now: Date, session?: SessionGuard): Promise<MessageRecord | undefined> {
    const nonceRef = this.nonces.doc(nonceDocId(draft.senderId, draft.nonce));
    const [nonceSnap, sessionSnap] = await this.db.getAll(nonceRef, ...(session ? [session.ref] : []));
    if (session) session.assertActive(sessionSnap!);
    return this.retried(nonceSnap!, draft, now.getTime(), (ref) => ref.get());
  }

  /** The message stored under the draft's nonce, if the nonce is still remembered and the draft retries it. */
  private async retried(nonceSnap: DocumentSnapshot, draft: MessageDraft, nowMs: number, read: Read): Promise<MessageRecord | undefined> {
    const nonce = nonceSnap.data() as NonceRecord | undefined;
    // A record past its retention may linger until the TTL policy deletes it: it still refuses the nonce.
    if (!nonce || nonce.senderId !== draft.senderId || nonce.expiresAt.toMillis() <= nowMs) return undefined;
    const original = await read(this.messages.doc(nonce.messageId));
    const stored = original.data() as StoredMessage | undefined;
    return stored && isRetryOf(draft, stored) ? toMessageRecord(original.id, stored) : undefined;
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
      if (!stored || stored.receiverId !== receiverId) return undefined;
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
