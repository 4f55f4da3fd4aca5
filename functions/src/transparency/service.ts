import type { Clock } from "../shared/clock";
import { AppError, errors } from "../shared/errors";
import { consistencyPath, EMPTY_ROOT, inclusionPath, neededNodes } from "./merkle";
import type { LogSigner } from "./log-key";
import type { SignedHead, TransparencyRepository } from "./repository";

/** Largest page of GET /transparency/entries (contract: end − start ≤ 1000). */
export const MAX_ENTRIES_PAGE = 1000;

/** The head's signed bytes: exactly these keys in this order (contract). */
export const signedHeadData = (head: Pick<SignedHead, "treeSize" | "rootHash" | "timestamp">) =>
  Buffer.from(JSON.stringify({ treeSize: head.treeSize, rootHash: head.rootHash, timestamp: head.timestamp }), "utf8");

export function signHead(signer: LogSigner, treeSize: number, rootHash: Buffer, at: Date): SignedHead {
  const unsigned = { treeSize, rootHash: rootHash.toString("base64"), timestamp: at.toISOString() };
  return { ...unsigned, signature: signer.sign(signedHeadData(unsigned)).toString("base64") };
}

const base64 = (hashes: Buffer[]) => hashes.map((hash) => hash.toString("base64"));

/** The log as clients read it: heads, proofs and entries, all from stored subtrees (O(log n) reads a proof). */
export class TransparencyService {
  constructor(
    private readonly log: TransparencyRepository,
    private readonly signer: LogSigner,
    private readonly clock: Clock,
  ) {}

  get publicKey(): string {
    return this.signer.publicKeyPem;
  }

  /** The latest signed head; before the first merge, a head of the empty tree signed now (never stored). */
  async head(): Promise<SignedHead> {
    return (await this.log.latestHead()) ?? signHead(this.signer, 0, EMPTY_ROOT, this.clock.now());
  }

  async headAt(treeSize: number): Promise<SignedHead> {
    const head = await this.log.headAt(treeSize);
    if (!head) throw new AppError("NOT_FOUND", "No signed tree head was published for this tree size", { field: "treeSize" });
    return head;
  }

  /** Every entry of the user in the tree of `treeSize` (default: the latest head), each with its inclusion proof. */
  async proof(userId: string, treeSize?: number) {
    const head = treeSize === undefined ? await this.head() : await this.headAt(treeSize);
    const { leaves, pending } = await this.log.leavesOf(userId);
    const inTree = leaves.filter((leaf) => leaf.leafIndex < head.treeSize);
    const paths = (lookup: Parameters<typeof inclusionPath>[2]) => inTree.map((leaf) => inclusionPath(leaf.leafIndex, head.treeSize, lookup));
    const lookup = await this.log.nodeLookup(neededNodes(paths));
    const auditPaths = paths(lookup);
    return {
      head,
      entries: inTree.map((leaf, index) => ({ leafIndex: leaf.leafIndex, leaf: leaf.leaf, auditPath: base64(auditPaths[index]!) })),
      ...(pending ? { pending: true as const } : {}),
    };
  }

  /** The RFC 9162 consistency proof between two sizes of the log, 1 ≤ from ≤ to ≤ the latest size. */
  async consistency(from: number, to: number) {
    const latest = await this.head();
    if (from > to) throw errors.validation("from", "from must not be greater than to");
    if (to > latest.treeSize) throw errors.validation("to", "to must not be greater than the latest tree size");
    const lookup = await this.log.nodeLookup(neededNodes((read) => consistencyPath(from, to, read)));
    return { proof: base64(consistencyPath(from, to, lookup)) };
  }

  /** Merged entries [start, end) (end − start ≤ MAX_ENTRIES_PAGE); entries past the latest head are not there yet. */
  async entries(start: number, end: number) {
    if (end <= start) throw errors.validation("end", "end must be greater than start");
    if (end - start > MAX_ENTRIES_PAGE) throw errors.validation("end", `end - start must be at most ${MAX_ENTRIES_PAGE}`);
    const leaves = await this.log.leavesBetween(start, end);
    return { entries: leaves.map(({ leafIndex, leaf }) => ({ leafIndex, leaf })) };
  }
}
