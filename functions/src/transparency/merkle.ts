import { createHash } from "node:crypto";

/**
 * The Merkle tree of RFC 9162 (Certificate Transparency 2.0) section 2.1, with SHA-256: pure math, no
 * storage. The log stores the hash of every perfect subtree (a power-of-two run of leaves aligned to
 * its size) once it is complete; every hash a proof needs, for any tree size, is one of those or is
 * computed from O(log n) of them. The functions here take a lookup of those stored hashes, so a caller
 * can first ask which ones a proof needs (`neededNodes`), read them in one go, then compute.
 */

/** A perfect subtree: leaves [index * 2^level, (index + 1) * 2^level). Level 0 is a leaf hash. */
export interface NodeId {
  level: number;
  index: number;
}

/** The stored hash of a perfect subtree; throws if it is not available. */
export type NodeLookup = (node: NodeId) => Buffer;

export const nodeKey = ({ level, index }: NodeId) => `L${level}-${index}`;

const sha256 = (...parts: Buffer[]) => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest();
};

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export const leafHash = (data: Buffer) => sha256(LEAF_PREFIX, data);
export const nodeHash = (left: Buffer, right: Buffer) => sha256(NODE_PREFIX, left, right);
/** The hash of the empty tree (RFC 9162 2.1.1). */
export const EMPTY_ROOT = sha256();

/** The largest power of two strictly smaller than n (n > 1): where RFC 9162 splits a tree of n leaves. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
const log2 = (n: number) => Math.round(Math.log2(n));

/** MTH(D[start:end]) from stored perfect subtrees (start is aligned, as every range of the recursion is). */
export function rangeHash(start: number, end: number, lookup: NodeLookup): Buffer {
  const size = end - start;
  if (size === 0) return EMPTY_ROOT;
  if (isPowerOfTwo(size) && start % size === 0) return lookup({ level: log2(size), index: start / size });
  const k = splitPoint(size);
  return nodeHash(rangeHash(start, start + k, lookup), rangeHash(start + k, end, lookup));
}

export const rootHash = (treeSize: number, lookup: NodeLookup) => rangeHash(0, treeSize, lookup);

/** PATH(m, D[0:n]) of RFC 9162 2.1.3.1: the inclusion proof of leaf `leafIndex` in the tree of `treeSize`. */
export function inclusionPath(leafIndex: number, treeSize: number, lookup: NodeLookup): Buffer[] {
  if (leafIndex < 0 || leafIndex >= treeSize) throw new RangeError("leaf index outside the tree");
  const path: Buffer[] = [];
  const walk = (m: number, start: number, end: number) => {
    if (end - start <= 1) return;
    const k = splitPoint(end - start);
    if (m < start + k) {
      walk(m, start, start + k);
      path.push(rangeHash(start + k, end, lookup));
    } else {
      walk(m, start + k, end);
      path.push(rangeHash(start, start + k, lookup));
    }
  };
  walk(leafIndex, 0, treeSize);
  return path;
}

/** PROOF(m, D[0:n]) of RFC 9162 2.1.4.1: the consistency proof from the tree of `from` leaves to the tree of `to`. */
export function consistencyPath(from: number, to: number, lookup: NodeLookup): Buffer[] {
  if (from < 1 || from > to) throw new RangeError("consistency needs 1 <= from <= to");
  const proof: Buffer[] = [];
  const sub = (m: number, start: number, end: number, complete: boolean) => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(rangeHash(start, end, lookup));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, start + k, complete);
      proof.push(rangeHash(start + k, end, lookup));
    } else {
      sub(m - k, start + k, end, false);
      proof.push(rangeHash(start, start + k, lookup));
    }
  };
  sub(from, 0, to, true);
  return proof;
}

/**
 * The stored subtrees a computation reads: runs it against a recording lookup. Every proof and root
 * reads O(log n) of them, so the caller reads them with one getAll.
 */
export function neededNodes(compute: (lookup: NodeLookup) => unknown): NodeId[] {
  const seen = new Map<string, NodeId>();
  const placeholder = Buffer.alloc(32);
  compute((node) => {
    seen.set(nodeKey(node), node);
    return placeholder;
  });
  return [...seen.values()];
}

/**
 * The perfect subtrees that make up a tree of `treeSize` leaves, left to right (one per set bit of
 * the size): all an append needs to read to extend the tree.
 */
export function frontier(treeSize: number): NodeId[] {
  const nodes: NodeId[] = [];
  let start = 0;
  for (let level = 52; level >= 0; level--) {
    const size = 2 ** level;
    if (treeSize - start >= size) {
      nodes.push({ level, index: start / size });
      start += size;
    }
  }
  return nodes;
}

/**
 * Appends leaf hashes to a tree of `treeSize` leaves whose frontier `lookup` can read: answers every
 * perfect subtree completed by the new leaves (leaves included), to be stored.
 */
export function appendLeaves(treeSize: number, newLeafHashes: Buffer[], lookup: NodeLookup): Map<string, { node: NodeId; hash: Buffer }> {
  const created = new Map<string, { node: NodeId; hash: Buffer }>();
  const read = (node: NodeId) => created.get(nodeKey(node))?.hash ?? lookup(node);
  newLeafHashes.forEach((hash, offset) => {
    const leafIndex = treeSize + offset;
    created.set(nodeKey({ level: 0, index: leafIndex }), { node: { level: 0, index: leafIndex }, hash });
    // Each time the new leaf completes a pair, the pair's parent is complete too.
    let level = 0;
    let index = leafIndex;
    while (index % 2 === 1) {
      const parent = { level: level + 1, index: (index - 1) / 2 };
      const parentHash = nodeHash(read({ level, index: index - 1 }), read({ level, index }));
      created.set(nodeKey(parent), { node: parent, hash: parentHash });
      level += 1;
      index = parent.index;
    }
  });
  return created;
}
