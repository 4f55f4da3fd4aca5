import type { ApiMethods } from "./rest.js";
import type { SignedTreeHead } from "./generated.js";

/**
 * Key transparency on the client: before trusting the identity key the API serves for a user, check it
 * is the newest binding of that user in the server's public, append-only log, proven against a head
 * signed by the log key the app pinned, and that this head extends the last one the app kept (so the
 * server cannot show this client a different history from everyone else's without being caught).
 * Web Crypto only (`crypto.subtle`): browsers, and Node 20+ through globalThis.crypto.
 */

/** What failed, for the app to tell the user (docs/API.md, "Key transparency"). */
export type KeyTransparencyFailure =
  /** A head's signature does not verify with the log key: not the log's head. */
  | "head_signature"
  /** A binding's proof does not lead to the signed root: the entry is not in that tree. */
  | "inclusion"
  /** A leaf is malformed, names another user, or the user's versions are not 1, 2, 3, … */
  | "leaf"
  /** The user has no binding in the log at all. */
  | "not_in_log"
  /** The key the API served is not the user's newest binding in the log. */
  | "stale_key"
  /** The key the API served is newer than the log's head: merged within seconds; check again shortly. */
  | "pending"
  /** The new head does not extend the head the app kept: a forked (split) view, or a rolled-back log. */
  | "consistency";

export class KeyTransparencyError extends Error {
  override name = "KeyTransparencyError";

  constructor(
    readonly reason: KeyTransparencyFailure,
    message: string,
  ) {
    super(message);
  }
}

/** One binding of an identity key to an account, as the log's leaf holds it. */
export interface KeyBinding {
  userId: string;
  publicKey: string;
  version: number;
  timestamp: string;
  leafIndex: number;
}

export interface VerifyUserKeyOptions {
  /** The key the API served for the user (contacts, search, a key exchange): it must be the newest binding. */
  publicKey: string;
  /**
   * The last head this app verified and kept (from an earlier call's `head`): the new head must be
   * consistent with it. Without one (first use), nothing is checked against the past.
   */
  trustedHead?: SignedTreeHead;
  /**
   * The log key (PEM SPKI) the app pinned at build time. Without it, it is fetched from the API and
   * returned as `logKey` for the app to pin from then on (trust on first use).
   */
  logKey?: string;
}

export interface VerifiedUserKey {
  /** The verified key: the user's newest binding, equal to the served one. */
  publicKey: string;
  version: number;
  /** Every key ever bound to the user, oldest first. */
  bindings: KeyBinding[];
  /** The verified signed head: keep it and pass it as `trustedHead` next time. */
  head: SignedTreeHead;
  /** The log key the head was verified with. */
  logKey: string;
  /** A newer binding of the user waits for the merge: the served key is about to be replaced. */
  pending: boolean;
}

/** The API calls the check makes. */
export type TransparencyApi = Pick<ApiMethods, "getTransparencyKey" | "getTransparencyProof" | "getTransparencyConsistency">;

const encoder = new TextEncoder();
/** Bytes backed by a plain ArrayBuffer: what Web Crypto takes. */
type Bytes = Uint8Array<ArrayBuffer>;
type LogKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const utf8 = (text: string): Bytes => new Uint8Array(encoder.encode(text));

function fromBase64(text: string): Bytes {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function concat(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const sha256 = async (...parts: Uint8Array[]): Promise<Bytes> => new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
const leafHashOf = (leaf: string) => sha256(new Uint8Array([0]), utf8(leaf));
const nodeHashOf = (left: Uint8Array, right: Uint8Array) => sha256(new Uint8Array([1]), left, right);
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

async function importLogKey(pem: string): Promise<LogKey> {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  return crypto.subtle.importKey("spki", fromBase64(body), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
}

/** Checks a head's signature: ECDSA P-256 / SHA-256, P1363, over JSON.stringify({ treeSize, rootHash, timestamp }). */
export async function verifyHeadSignature(head: SignedTreeHead, logKey: LogKey): Promise<boolean> {
  const signed = utf8(JSON.stringify({ treeSize: head.treeSize, rootHash: head.rootHash, timestamp: head.timestamp }));
  try {
    return await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, logKey, fromBase64(head.signature), signed);
  } catch {
    return false;
  }
}

/** RFC 9162 2.1.3.2: does `auditPath` lead from the leaf at `leafIndex` to `root` in a tree of `treeSize`? */
export async function verifyInclusion(leafIndex: number, treeSize: number, leaf: string, auditPath: string[], root: Uint8Array): Promise<boolean> {
  if (leafIndex < 0 || leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = await leafHashOf(leaf);
  for (const encoded of auditPath) {
    if (sn === 0) return false;
    const p = fromBase64(encoded);
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHashOf(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHashOf(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && sameBytes(r, root);
}

/** RFC 9162 2.1.4.2: does `proof` show the tree of `second` leaves extends the tree of `first`? */
export async function verifyConsistency(first: number, second: number, firstRoot: Bytes, secondRoot: Bytes, proof: string[]): Promise<boolean> {
  if (first < 1 || first > second) return false;
  if (first === second) return proof.length === 0 && sameBytes(firstRoot, secondRoot);
  let path = proof.map(fromBase64);
  if ((first & (first - 1)) === 0) path = [firstRoot, ...path];
  if (path.length === 0) return false;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHashOf(c, fr);
      sr = await nodeHashOf(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = await nodeHashOf(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && sameBytes(fr, firstRoot) && sameBytes(sr, secondRoot);
}

function bindingOf(leaf: string, leafIndex: number): KeyBinding | undefined {
  try {
    const parsed = JSON.parse(leaf) as Partial<KeyBinding>;
    const { userId, publicKey, version, timestamp } = parsed;
    if (typeof userId !== "string" || typeof publicKey !== "string" || typeof version !== "number" || typeof timestamp !== "string") return undefined;
    // The leaf must be exactly the contract's form: anything else hashes differently from what was logged.
    if (JSON.stringify({ userId, publicKey, version, timestamp }) !== leaf) return undefined;
    return { userId, publicKey, version, timestamp, leafIndex };
  } catch {
    return undefined;
  }
}

const fail = (reason: KeyTransparencyFailure, message: string): never => {
  throw new KeyTransparencyError(reason, message);
};

/**
 * Verifies the key the API served for `userId` against the key-transparency log; throws
 * KeyTransparencyError naming what failed. See VerifyUserKeyOptions for what to pass and keep.
 */
export async function verifyUserKey(api: TransparencyApi, userId: string, options: VerifyUserKeyOptions): Promise<VerifiedUserKey> {
  const logKeyPem = options.logKey ?? (await api.getTransparencyKey()).publicKey;
  const logKey = await importLogKey(logKeyPem);
  const { head, entries, pending } = await api.getTransparencyProof(userId);
  if (!(await verifyHeadSignature(head, logKey))) fail("head_signature", "The log's head is not signed by the log key");
  const root = fromBase64(head.rootHash);

  const bindings: KeyBinding[] = [];
  for (const entry of [...entries].sort((a, b) => a.leafIndex - b.leafIndex)) {
    const binding = bindingOf(entry.leaf, entry.leafIndex);
    if (!binding || binding.userId !== userId || binding.version !== bindings.length + 1) {
      fail("leaf", `Entry ${entry.leafIndex} is not the user's next binding`);
    }
    if (!(await verifyInclusion(entry.leafIndex, head.treeSize, entry.leaf, entry.auditPath, root))) {
      fail("inclusion", `Entry ${entry.leafIndex} is not in the signed tree`);
    }
    bindings.push(binding!);
  }
  const newest = bindings[bindings.length - 1];
  if (!newest) fail(pending ? "pending" : "not_in_log", pending ? "The user's key is not merged into the log yet" : "The user has no key in the log");
  if (newest!.publicKey !== options.publicKey) {
    fail(pending ? "pending" : "stale_key", pending ? "A newer key of the user is not merged into the log yet" : "The served key is not the user's newest key in the log");
  }

  const trusted = options.trustedHead;
  if (trusted && trusted.treeSize > 0) {
    if (!(await verifyHeadSignature(trusted, logKey))) fail("head_signature", "The kept head is not signed by the log key");
    if (trusted.treeSize > head.treeSize) fail("consistency", "The log's head is older than the one kept: the log was rolled back or forked");
    const { proof } =
      trusted.treeSize === head.treeSize ? { proof: [] } : await api.getTransparencyConsistency({ from: trusted.treeSize, to: head.treeSize });
    if (!(await verifyConsistency(trusted.treeSize, head.treeSize, fromBase64(trusted.rootHash), root, proof))) {
      fail("consistency", "The log's head does not extend the one kept: a forked (split) view");
    }
  }
  return { publicKey: newest!.publicKey, version: newest!.version, bindings, head, logKey: logKeyPem, pending: pending === true };
}
