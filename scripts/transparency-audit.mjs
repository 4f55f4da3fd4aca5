#!/usr/bin/env node
// A monitor of the key-transparency log: downloads every entry, recomputes the RFC 9162 tree, checks it
// against the latest signed head and its signature, and prints every key ever bound to one user with its
// version and time. Exit 0 when everything matches, 1 on any mismatch, 2 on a usage or network problem.
//
//   npm run transparency:audit -- --user <user id or username> [--api http://localhost:3000/api]
//        [--log-key <file with the pinned PEM>] [--token <access token>] [--state <file>]
//
// --user:    a user id (user_…) is used as is. A username needs --token: it is looked up with
//            GET /users/search, and only to learn the id; every key printed comes from the log itself.
// --log-key: the log key the app pinned. Without it the key is fetched from the API (and printed): an
//            audit against a key the audited server chose proves only internal consistency.
// --state:   a file keeping the last head this monitor verified; the new head must extend it (RFC 9162
//            consistency proof), and it is updated after a clean run. This is what catches a forked log.
import { createHash, createPublicKey, verify } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const PAGE = 1000;

const { values } = parseArgs({
  options: {
    user: { type: "string" },
    api: { type: "string", default: process.env.API_BASE_URL ?? "http://localhost:3000/api" },
    "log-key": { type: "string" },
    token: { type: "string" },
    state: { type: "string" },
  },
});
if (!values.user) {
  console.error("usage: npm run transparency:audit -- --user <user id or username> [--api URL] [--log-key FILE] [--token TOKEN] [--state FILE]");
  process.exit(2);
}
const api = values.api.replace(/\/+$/, "");
const problems = [];
const mismatch = (message) => problems.push(message);

const H = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
const b64 = (text) => Buffer.from(text, "base64");

async function get(path, token) {
  const response = await fetch(api + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = await response.json().catch(() => undefined);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${body?.error?.code ?? ""} ${body?.error?.message ?? ""}`.trim());
  return body;
}

function signatureHolds(head, logKeyPem) {
  const data = Buffer.from(JSON.stringify({ treeSize: head.treeSize, rootHash: head.rootHash, timestamp: head.timestamp }));
  try {
    return verify("sha256", data, { key: createPublicKey(logKeyPem), dsaEncoding: "ieee-p1363" }, b64(head.signature));
  } catch {
    return false;
  }
}

/** RFC 9162's MTH over leaf hashes, in one pass: a stack of perfect subtrees, folded right to left. */
function treeHash(leafHashes) {
  if (leafHashes.length === 0) return H();
  const stack = []; // [{ size, hash }], sizes strictly decreasing
  for (const hash of leafHashes) {
    let node = { size: 1, hash };
    while (stack.length > 0 && stack[stack.length - 1].size === node.size) {
      const left = stack.pop();
      node = { size: left.size * 2, hash: H(NODE, left.hash, node.hash) };
    }
    stack.push(node);
  }
  let root = stack.pop().hash;
  while (stack.length > 0) root = H(NODE, stack.pop().hash, root);
  return root;
}

/** RFC 9162 2.1.4.2. */
function consistencyHolds(first, second, firstRoot, secondRoot, proof) {
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) ((fn = Math.floor(fn / 2)), (sn = Math.floor(sn / 2)));
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = H(NODE, c, fr);
      sr = H(NODE, c, sr);
      while (fn % 2 === 0 && fn !== 0) ((fn = Math.floor(fn / 2)), (sn = Math.floor(sn / 2)));
    } else {
      sr = H(NODE, sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

async function resolveUser(user) {
  if (/^user_[A-Za-z0-9_-]{20,64}$/.test(user)) return user;
  if (!values.token) throw new Error("a username needs --token (an access token) to be looked up; or pass the user id");
  const { users } = await get(`/users/search?q=${encodeURIComponent(user)}&limit=25`, values.token);
  const match = users.find((candidate) => candidate.username.toLowerCase() === user.toLowerCase());
  if (match) return match.id;
  // Search leaves out the caller: the token's owner auditing their own account.
  const { user: me } = await get("/users/profile", values.token);
  if (me.username.toLowerCase() === user.toLowerCase()) return me.id;
  throw new Error(`no user named ${user}`);
}

const fingerprint = (pem) => {
  try {
    return H(createPublicKey(pem).export({ type: "spki", format: "der" })).toString("hex").match(/.{4}/g).join(" ");
  } catch {
    return "(not a public key)";
  }
};

async function main() {
  const userId = await resolveUser(values.user);
  const logKey = values["log-key"] ? readFileSync(values["log-key"], "utf8") : (await get("/transparency/key")).publicKey;
  const head = await get("/transparency/head");
  console.log(`log at ${api}: ${head.treeSize} entries, head signed ${head.timestamp}`);
  if (!values["log-key"]) console.log(`log key (fetched, not pinned: pass --log-key to pin it), SHA-256 ${fingerprint(logKey)}`);
  if (!signatureHolds(head, logKey)) mismatch("the latest head's signature does not verify with the log key");

  const leafHashes = [];
  const bindings = [];
  for (let start = 0; start < head.treeSize; start += PAGE) {
    const end = Math.min(head.treeSize, start + PAGE);
    const { entries } = await get(`/transparency/entries?start=${start}&end=${end}`);
    if (entries.length !== end - start) mismatch(`entries ${start}..${end - 1}: ${entries.length} returned, ${end - start} expected`);
    for (const [offset, entry] of entries.entries()) {
      if (entry.leafIndex !== start + offset) mismatch(`entry ${start + offset} came back as ${entry.leafIndex}`);
      leafHashes.push(H(LEAF, Buffer.from(entry.leaf, "utf8")));
      let leaf;
      try {
        leaf = JSON.parse(entry.leaf);
      } catch {
        mismatch(`entry ${entry.leafIndex} is not JSON`);
        continue;
      }
      const canonical = JSON.stringify({ userId: leaf.userId, publicKey: leaf.publicKey, version: leaf.version, timestamp: leaf.timestamp });
      if (canonical !== entry.leaf) mismatch(`entry ${entry.leafIndex} is not in the contract's form`);
      if (leaf.userId === userId) bindings.push({ ...leaf, leafIndex: entry.leafIndex });
    }
  }
  const root = treeHash(leafHashes);
  if (!root.equals(b64(head.rootHash))) mismatch(`the recomputed root ${root.toString("base64")} is not the signed head's ${head.rootHash}`);
  else console.log(`recomputed root matches the signed head: ${head.rootHash}`);

  bindings.forEach((binding, index) => {
    if (binding.version !== index + 1) mismatch(`${userId}'s binding at ${binding.leafIndex} has version ${binding.version}, expected ${index + 1}`);
  });

  if (values.state) {
    if (existsSync(values.state)) {
      const kept = JSON.parse(readFileSync(values.state, "utf8"));
      if (!signatureHolds(kept, logKey)) mismatch("the kept head's signature does not verify");
      else if (kept.treeSize > head.treeSize) mismatch(`the log shrank: kept ${kept.treeSize} entries, now ${head.treeSize}`);
      else if (kept.treeSize > 0) {
        const { proof } = kept.treeSize === head.treeSize ? { proof: [] } : await get(`/transparency/consistency?from=${kept.treeSize}&to=${head.treeSize}`);
        if (!consistencyHolds(kept.treeSize, head.treeSize, b64(kept.rootHash), b64(head.rootHash), proof.map(b64))) {
          mismatch(`the log does not extend the head kept in ${values.state} (${kept.treeSize} entries): a forked log`);
        } else console.log(`consistent with the kept head of ${kept.treeSize} entries`);
      }
    }
  }

  console.log(`\nkeys bound to ${userId}: ${bindings.length}`);
  for (const binding of bindings) {
    console.log(`  version ${binding.version}  ${binding.timestamp}  entry ${binding.leafIndex}  SHA-256 ${fingerprint(binding.publicKey)}`);
    console.log(binding.publicKey.trimEnd().replace(/^/gm, "    "));
  }
  if (bindings.length === 0) console.log("  (none)");

  if (problems.length > 0) {
    console.error(`\nMISMATCH (${problems.length}):`);
    for (const problem of problems) console.error(`  - ${problem}`);
    process.exit(1);
  }
  if (values.state) writeFileSync(values.state, JSON.stringify({ treeSize: head.treeSize, rootHash: head.rootHash, timestamp: head.timestamp, signature: head.signature }) + "\n");
  console.log("\nOK: every entry is in the signed tree");
}

main().catch((error) => {
  console.error(`audit failed: ${error.message}`);
  process.exit(2);
});
