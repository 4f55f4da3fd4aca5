import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  appendLeaves,
  consistencyPath,
  EMPTY_ROOT,
  frontier,
  inclusionPath,
  leafHash,
  neededNodes,
  nodeKey,
  rootHash,
  type NodeLookup,
} from "../../functions/src/transparency/merkle";

/**
 * The log's Merkle math against RFC 9162 written out plainly here: MTH straight from the leaves, and
 * the verification algorithms of sections 2.1.3.2 and 2.1.4.2. The stored form (perfect subtrees,
 * appended in batches of any size) must give the same roots and proofs.
 */

const sha = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();
const leafData = (i: number) => Buffer.from(JSON.stringify({ userId: `user_${i}`, publicKey: "k", version: 1, timestamp: "t" }));

function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return sha(Buffer.from([0]), leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

function verifyInclusion(index: number, size: number, leaf: Buffer, path: Buffer[], root: Buffer): boolean {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = sha(Buffer.from([0]), leaf);
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = sha(Buffer.from([1]), p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) ((fn >>= 1), (sn >>= 1));
    } else {
      r = sha(Buffer.from([1]), r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 && r.equals(root);
}

function verifyConsistency(first: number, second: number, firstRoot: Buffer, secondRoot: Buffer, proof: Buffer[]): boolean {
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  let path = [...proof];
  if ((first & (first - 1)) === 0) path = [firstRoot, ...path];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) ((fn >>= 1), (sn >>= 1));
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = sha(Buffer.from([1]), c, fr);
      sr = sha(Buffer.from([1]), c, sr);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) ((fn >>= 1), (sn >>= 1));
    } else {
      sr = sha(Buffer.from([1]), sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0;
}

/** Builds the stored form by appending in batches of the given sizes. */
function storedTree(size: number, batches: number[]): NodeLookup {
  const store = new Map<string, Buffer>();
  const lookup: NodeLookup = (node) => {
    const hash = store.get(nodeKey(node));
    if (!hash) throw new Error(`missing ${nodeKey(node)}`);
    return hash;
  };
  let done = 0;
  let turn = 0;
  while (done < size) {
    const count = Math.min(batches[turn++ % batches.length]!, size - done);
    const hashes = Array.from({ length: count }, (_, i) => leafHash(leafData(done + i)));
    // An append reads only the frontier: anything else missing would throw.
    const frontierOnly = new Map(frontier(done).map((node) => [nodeKey(node), lookup(node)]));
    for (const [key, { hash }] of appendLeaves(done, hashes, (node) => frontierOnly.get(nodeKey(node)) ?? lookup({ level: -1, index: -1 }))) store.set(key, hash);
    done += count;
  }
  return lookup;
}

describe("the key-transparency Merkle tree (RFC 9162 2.1)", () => {
  const SIZE = 70;
  const leaves = Array.from({ length: SIZE }, (_, i) => leafData(i));
  const tree = storedTree(SIZE, [1, 3, 7, 2, 16]);
  const roots = Array.from({ length: SIZE + 1 }, (_, n) => mth(leaves.slice(0, n)));

  it("when the tree is empty, then its root is SHA-256 of nothing", () => {
    expect(rootHash(0, tree).equals(EMPTY_ROOT)).toBe(true);
  });

  it("when leaves are appended in batches, then every size's root is MTH of its leaves", () => {
    for (let n = 1; n <= SIZE; n++) expect(rootHash(n, tree).toString("hex"), `size ${n}`).toBe(mth(leaves.slice(0, n)).toString("hex"));
  });

  it("when an inclusion proof is made for every leaf of every size up to 70, then RFC 9162's verifier accepts it", () => {
    for (let n = 1; n <= SIZE; n++) {
      const root = roots[n]!;
      for (let m = 0; m < n; m++) expect(verifyInclusion(m, n, leaves[m]!, inclusionPath(m, n, tree), root), `leaf ${m} of ${n}`).toBe(true);
    }
  });

  it("when a consistency proof is made between every pair of sizes up to 70, then RFC 9162's verifier accepts it", () => {
    for (let n = 1; n <= SIZE; n++) {
      for (let m = 1; m <= n; m++) {
        const ok = verifyConsistency(m, n, roots[m]!, roots[n]!, consistencyPath(m, n, tree));
        expect(ok, `${m} -> ${n}`).toBe(true);
      }
    }
  });

  it("when a proof is tampered with, then the verifier refuses it", () => {
    const root = roots[13]!;
    const path = inclusionPath(5, 13, tree);
    path[1] = Buffer.alloc(32, 7);
    expect(verifyInclusion(5, 13, leaves[5]!, path, root)).toBe(false);
    expect(verifyInclusion(5, 13, leaves[6]!, inclusionPath(5, 13, tree), root)).toBe(false);
  });

  it("when a proof of a large tree is computed, then it reads O(log n) stored subtrees", () => {
    const n = 100_000;
    const needed = neededNodes((lookup) => inclusionPath(77_777, n, lookup));
    expect(needed.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)));
    const consistency = neededNodes((lookup) => consistencyPath(12_345, n, lookup));
    expect(consistency.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)));
    expect(neededNodes((lookup) => rootHash(n, lookup)).length).toBe(frontier(n).length);
  });
});
