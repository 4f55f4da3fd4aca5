import { FieldValue, Timestamp, type DocumentData, type Firestore, type Transaction } from "firebase-admin/firestore";
import { COLLECTIONS } from "../shared/firestore";
import { appendLeaves, frontier, leafHash, nodeKey, rootHash, type NodeId, type NodeLookup } from "./merkle";

/**
 * The only door to the key-transparency log's documents (layout: shared/firestore.ts):
 * - transparencyQueue/{bindingId}   bindings waiting for the sequencer, written in the transaction that
 *                                   registers the account or changes its key
 * - transparencyLeaves/{leafIndex}  the merged leaves (their exact JSON)
 * - transparencyUsers/{userId}      leafIndices: where the user's leaves are; queued: bindings waiting.
 *                                   A proof reads documents by id only (no query, whose cost on the
 *                                   emulator grows with the database)
 * - transparencyNodes/L{level}-{i}  the hash of every complete perfect subtree, immutable once written:
 *                                   any proof for any tree size reads O(log n) of them
 * - transparencyHeads/{treeSize}    every signed tree head ever published
 * - transparencyLog/head            the latest signed head; transparencyLog/lease, the sequencer's lease
 */

/** A binding of an identity key to an account, as the leaf stores it (contract: this key order). */
export interface Binding {
  userId: string;
  publicKey: string;
  version: number;
  timestamp: string;
}

/** The leaf's data: exactly these keys in this order, UTF-8. */
export const leafDataOf = (binding: Binding) =>
  JSON.stringify({ userId: binding.userId, publicKey: binding.publicKey, version: binding.version, timestamp: binding.timestamp });

export interface SignedHead {
  treeSize: number;
  rootHash: string;
  timestamp: string;
  signature: string;
}

export interface StoredLeaf {
  leafIndex: number;
  userId: string;
  leaf: string;
}

/** What one merge did; `head` is absent when nothing was waiting. */
export interface MergeResult {
  merged: number;
  head?: SignedHead;
  /** queuedAt of each merged binding, for the merge-delay measure. */
  queuedAtMs: number[];
}

/** Reads stored hashes into a lookup (throws on a missing one: the stored tree would be incomplete). */
function lookupOf(hashes: Map<string, Buffer>): NodeLookup {
  return (node) => {
    const hash = hashes.get(nodeKey(node));
    if (!hash) throw new Error(`transparency node ${nodeKey(node)} is missing`);
    return hash;
  };
}

export class TransparencyRepository {
  private readonly queue;
  private readonly leaves;
  private readonly nodes;
  private readonly heads;
  private readonly userIndex;
  private readonly log;

  constructor(private readonly db: Firestore) {
    this.queue = db.collection(COLLECTIONS.transparencyQueue);
    this.leaves = db.collection(COLLECTIONS.transparencyLeaves);
    this.nodes = db.collection(COLLECTIONS.transparencyNodes);
    this.heads = db.collection(COLLECTIONS.transparencyHeads);
    this.userIndex = db.collection(COLLECTIONS.transparencyUsers);
    this.log = db.collection(COLLECTIONS.transparencyLog);
  }

  /**
   * Inside the caller's transaction (registration, key change): the binding waits for the sequencer,
   * and the user's index counts it as queued (so a proof can say `pending` without a query).
   */
  enqueue(tx: Transaction, bindingId: string, binding: Binding, queuedAt: Date): void {
    tx.create(this.queue.doc(bindingId), { userId: binding.userId, leaf: leafDataOf(binding), queuedAt: Timestamp.fromDate(queuedAt) });
    tx.set(this.userIndex.doc(binding.userId), { queued: FieldValue.increment(1) }, { merge: true });
  }

  async hasQueued(): Promise<boolean> {
    return !(await this.queue.limit(1).select().get()).empty;
  }

  /**
   * Takes (or renews) the sequencer's lease for `ttlMs` unless another holder's is still running: one
   * sequencer merges at a time, however many processes run one.
   */
  async takeLease(holder: string, now: Date, ttlMs: number): Promise<boolean> {
    const ref = this.log.doc("lease");
    return this.db.runTransaction(async (tx) => {
      const lease = await tx.get(ref);
      const heldBy = lease.get("holder") as string | undefined;
      const until = lease.get("expiresAt") as Timestamp | undefined;
      if (heldBy && heldBy !== holder && until && until.toMillis() > now.getTime()) return false;
      tx.set(ref, { holder, expiresAt: Timestamp.fromMillis(now.getTime() + ttlMs) });
      return true;
    });
  }

  async releaseLease(holder: string): Promise<void> {
    const ref = this.log.doc("lease");
    await this.db.runTransaction(async (tx) => {
      const lease = await tx.get(ref);
      if (lease.get("holder") === holder) tx.delete(ref);
    });
  }

  /**
   * Merges up to `maxBatch` queued bindings, oldest first, in one transaction: leaves, the perfect
   * subtrees they complete, the signed head and its history entry, the queue items deleted. A retried
   * attempt re-reads everything, so an attempt that had committed leaves nothing to merge.
   */
  async merge(maxBatch: number, signHead: (treeSize: number, rootHash: Buffer) => SignedHead): Promise<MergeResult> {
    const headRef = this.log.doc("head");
    // Which bindings wait is read outside the transaction, which then reads them by id: a query inside
    // it would hold the queue against the registrations writing to it (the emulator locks the range).
    const candidates = (await this.queue.orderBy("queuedAt").limit(maxBatch).select().get()).docs.map((doc) => doc.ref);
    if (candidates.length === 0) return { merged: 0, queuedAtMs: [] };
    return this.db.runTransaction(async (tx) => {
      const [latest, ...queued] = await tx.getAll(headRef, ...candidates);
      const treeSize = latest!.exists ? (latest!.get("treeSize") as number) : 0;
      // Gone: merged by an earlier attempt of this transaction that committed (or by another sequencer).
      const waiting = { docs: queued.filter((doc) => doc.exists) };
      if (waiting.docs.length === 0) return { merged: 0, queuedAtMs: [] };
      const edge = frontier(treeSize);
      const stored = edge.length > 0 ? await tx.getAll(...edge.map((node) => this.nodes.doc(nodeKey(node)))) : [];
      const hashes = new Map<string, Buffer>();
      stored.forEach((doc, index) => {
        if (doc.exists) hashes.set(nodeKey(edge[index]!), Buffer.from(doc.get("hash") as string, "base64"));
      });

      const leaves = waiting.docs.map((doc) => doc.get("leaf") as string);
      const created = appendLeaves(treeSize, leaves.map((leaf) => leafHash(Buffer.from(leaf, "utf8"))), lookupOf(hashes));
      for (const [key, { hash }] of created) hashes.set(key, hash);
      const newSize = treeSize + leaves.length;
      const head = signHead(newSize, rootHash(newSize, lookupOf(hashes)));

      const byUser = new Map<string, number[]>();
      waiting.docs.forEach((doc, offset) => {
        const leafIndex = treeSize + offset;
        const userId = doc.get("userId") as string;
        tx.create(this.leaves.doc(String(leafIndex)), { leafIndex, userId, leaf: leaves[offset], bindingId: doc.id });
        tx.delete(doc.ref);
        byUser.set(userId, [...(byUser.get(userId) ?? []), leafIndex]);
      });
      // One write per user: where the leaves are, and that they no longer wait.
      for (const [userId, leafIndices] of byUser) {
        tx.set(this.userIndex.doc(userId), { leafIndices: FieldValue.arrayUnion(...leafIndices), queued: FieldValue.increment(-leafIndices.length) }, { merge: true });
      }
      for (const [key, { hash }] of created) tx.create(this.nodes.doc(key), { hash: hash.toString("base64") });
      tx.create(this.heads.doc(String(newSize)), head);
      tx.set(headRef, head);
      return { merged: leaves.length, head, queuedAtMs: waiting.docs.map((doc) => (doc.get("queuedAt") as Timestamp).toMillis()) };
    });
  }

  async latestHead(): Promise<SignedHead | undefined> {
    const snapshot = await this.log.doc("head").get();
    return snapshot.exists ? headOf(snapshot.data()!) : undefined;
  }

  async headAt(treeSize: number): Promise<SignedHead | undefined> {
    const snapshot = await this.heads.doc(String(treeSize)).get();
    return snapshot.exists ? headOf(snapshot.data()!) : undefined;
  }

  /**
   * Every merged leaf of a user, by leaf index, and whether a binding of theirs still waits: two reads
   * by id (the user's index, then the leaves), no query (the emulator's grow with the database).
   */
  async leavesOf(userId: string): Promise<{ leaves: StoredLeaf[]; pending: boolean }> {
    const index = await this.userIndex.doc(userId).get();
    const pending = ((index.get("queued") as number | undefined) ?? 0) > 0;
    const leafIndices = ((index.get("leafIndices") as number[] | undefined) ?? []).sort((a, b) => a - b);
    if (leafIndices.length === 0) return { leaves: [], pending };
    const docs = await this.db.getAll(...leafIndices.map((leafIndex) => this.leaves.doc(String(leafIndex))));
    return { leaves: docs.filter((doc) => doc.exists).map((doc) => leafOf(doc.data()!)), pending };
  }

  /** Leaves [start, end), in order. */
  async leavesBetween(start: number, end: number): Promise<StoredLeaf[]> {
    const snapshot = await this.leaves.where("leafIndex", ">=", start).where("leafIndex", "<", end).orderBy("leafIndex").get();
    return snapshot.docs.map((doc) => leafOf(doc.data()));
  }

  /** The stored hashes of the given perfect subtrees, in one read. */
  async nodeLookup(nodes: NodeId[]): Promise<NodeLookup> {
    const hashes = new Map<string, Buffer>();
    if (nodes.length > 0) {
      const docs = await this.db.getAll(...nodes.map((node) => this.nodes.doc(nodeKey(node))));
      docs.forEach((doc, index) => {
        if (doc.exists) hashes.set(nodeKey(nodes[index]!), Buffer.from(doc.get("hash") as string, "base64"));
      });
    }
    return lookupOf(hashes);
  }
}

function headOf(data: DocumentData): SignedHead {
  return { treeSize: data.treeSize, rootHash: data.rootHash, timestamp: data.timestamp, signature: data.signature };
}

function leafOf(data: DocumentData): StoredLeaf {
  return { leafIndex: data.leafIndex, userId: data.userId, leaf: data.leaf };
}
