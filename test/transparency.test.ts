import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify } from "node:crypto";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApiClient } from "../client/src/index.js";
import { KeyTransparencyError, type KeyTransparencyFailure } from "../client/src/transparency.js";
import { TransparencyRepository, type Binding } from "../functions/src/transparency/repository";
import { newPublicKeyPem, registerUser, startTestApp, type TestApp } from "./support/app";
import { closeAllSockets, collect, connectAs, waitFor } from "./support/sockets";

/**
 * The key-transparency log over real HTTP on the emulator. Proofs are checked by a verifier written
 * here from RFC 9162's text (node:crypto, none of the server's or the client's code); tampering is
 * checked through the typed client's verifyUserKey.
 */

// ---- An independent RFC 9162 verifier (sections 2.1.1, 2.1.3.2, 2.1.4.2). ----
const H = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
const b64 = (text: string) => Buffer.from(text, "base64");

/** MTH(D[n]) straight from the leaves' data. */
function merkleTreeHash(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return H();
  if (leaves.length === 1) return H(LEAF, leaves[0]!);
  let k = 1;
  while (k << 1 < leaves.length) k <<= 1;
  return H(NODE, merkleTreeHash(leaves.slice(0, k)), merkleTreeHash(leaves.slice(k)));
}

function inclusionHolds(leafIndex: number, treeSize: number, leaf: Buffer, path: Buffer[], root: Buffer): boolean {
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = H(LEAF, leaf);
  for (const p of path) {
    if (sn === 0) return false;
    if ((fn & 1) === 1 || fn === sn) {
      r = H(NODE, p, r);
      while ((fn & 1) === 0 && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = H(NODE, r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 && r.equals(root);
}

function consistencyHolds(first: number, second: number, firstRoot: Buffer, secondRoot: Buffer, proof: Buffer[]): boolean {
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while ((fn & 1) === 1) {
    fn >>= 1;
    sn >>= 1;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if ((fn & 1) === 1 || fn === sn) {
      fr = H(NODE, c, fr);
      sr = H(NODE, c, sr);
      while ((fn & 1) === 0 && fn !== 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = H(NODE, sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0;
}

interface Head {
  treeSize: number;
  rootHash: string;
  timestamp: string;
  signature: string;
}

function headSignatureHolds(head: Head, logKeyPem: string): boolean {
  const data = Buffer.from(JSON.stringify({ treeSize: head.treeSize, rootHash: head.rootHash, timestamp: head.timestamp }));
  return nodeVerify("sha256", data, { key: createPublicKey(logKeyPem), dsaEncoding: "ieee-p1363" }, b64(head.signature));
}

// ---- The app. ----
let app: TestApp;
let log: TransparencyRepository;

beforeAll(async () => {
  app = await startTestApp({}, { relay: { sequencerIntervalMs: 0 } });
  log = new TransparencyRepository(app.db);
});
afterEach(() => closeAllSockets());
afterAll(async () => app?.close());

const newUserId = () => `user_${randomBytes(18).toString("base64url")}`;

/** Queues bindings as registration does (the queue, in a transaction), without bcrypt. */
async function queueBindings(bindings: Binding[]): Promise<void> {
  await app.db.runTransaction(async (tx) => {
    for (const binding of bindings) log.enqueue(tx, `bind_${randomBytes(12).toString("base64url")}`, binding, new Date());
  });
}

const mergeAll = () => app.services.sequencer.run();

const entriesOf = async (start: number, end: number) => (await app.request("GET", `/api/transparency/entries?start=${start}&end=${end}`)).body.entries as Array<{ leafIndex: number; leaf: string }>;

describe("the key-transparency log, checked by an independent RFC 9162 verifier", () => {
  const USERS = 5;
  const SIZE = 70;
  const users = Array.from({ length: USERS }, newUserId);
  let token: string;
  let logKey: string;

  beforeAll(async () => {
    // One binding per merge, so a signed head is published for every size from 1 to 70.
    for (let i = 0; i < SIZE; i++) {
      const userId = users[i % USERS]!;
      await queueBindings([{ userId, publicKey: newPublicKeyPem(), version: Math.floor(i / USERS) + 1, timestamp: new Date().toISOString() }]);
      await mergeAll();
    }
    token = (await registerUser(app)).token;
    await mergeAll();
    logKey = (await app.request("GET", "/api/transparency/key")).body.publicKey;
  }, 120_000);

  it("when the log key is fetched, then it is the P-256 public half of the configured log key", () => {
    const configured = createPublicKey(createPrivateKey(app.config.transparencyLogKey)).export({ type: "spki", format: "pem" }).toString();
    expect(logKey).toBe(configured);
    expect(createPublicKey(logKey).asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("when every head from size 1 to 70 is read, then each is signed by the log key and its root is MTH of the first n entries", async () => {
    const leaves = (await entriesOf(0, SIZE)).map((entry) => Buffer.from(entry.leaf, "utf8"));
    expect(leaves).toHaveLength(SIZE);
    for (let n = 1; n <= SIZE; n++) {
      const { status, body } = await app.request("GET", `/api/transparency/heads/${n}`);
      expect(status).toBe(200);
      expect(headSignatureHolds(body, logKey), `head ${n}`).toBe(true);
      expect(body.rootHash, `root ${n}`).toBe(merkleTreeHash(leaves.slice(0, n)).toString("base64"));
    }
  });

  it("when each user's proofs are read at every tree size from 1 to 70, then every leaf's inclusion proof verifies", async () => {
    let checked = 0;
    for (let n = 1; n <= SIZE; n++) {
      const answers = await Promise.all(users.map((userId) => app.request("GET", `/api/transparency/proof/${userId}?treeSize=${n}`, { token })));
      for (const [u, userId] of users.entries()) {
        const { status, body } = answers[u]!;
        expect(status).toBe(200);
        expect(body.head.treeSize).toBe(n);
        expect(headSignatureHolds(body.head, logKey)).toBe(true);
        // Leaves u, u + 5, u + 10, … belong to user u.
        expect(body.entries.map((entry: { leafIndex: number }) => entry.leafIndex)).toEqual(Array.from({ length: Math.ceil((n - u) / USERS) }, (_, i) => u + i * USERS).filter((i) => i < n));
        for (const entry of body.entries) {
          const ok = inclusionHolds(entry.leafIndex, n, Buffer.from(entry.leaf, "utf8"), entry.auditPath.map(b64), b64(body.head.rootHash));
          expect(ok, `leaf ${entry.leafIndex} of ${n}`).toBe(true);
          expect(JSON.parse(entry.leaf)).toMatchObject({ userId, version: Math.floor(entry.leafIndex / USERS) + 1 });
          checked += 1;
        }
      }
    }
    expect(checked).toBe((SIZE * (SIZE + 1)) / 2); // every leaf of every tree size
  }, 120_000);

  it("when consistency is asked between every pair of sizes up to 20, then every proof verifies between the two signed heads", async () => {
    const heads = new Map<number, Head>();
    for (let n = 1; n <= 20; n++) heads.set(n, (await app.request("GET", `/api/transparency/heads/${n}`)).body);
    for (let m = 1; m <= 20; m++) {
      for (let n = m; n <= 20; n++) {
        const { status, body } = await app.request("GET", `/api/transparency/consistency?from=${m}&to=${n}`);
        expect(status).toBe(200);
        expect(consistencyHolds(m, n, b64(heads.get(m)!.rootHash), b64(heads.get(n)!.rootHash), body.proof.map(b64)), `${m} -> ${n}`).toBe(true);
      }
    }
  }, 60_000);

  it("when a proof is tampered with, then the independent verifier refuses it (the verifier is not a rubber stamp)", async () => {
    const { body } = await app.request("GET", `/api/transparency/proof/${users[2]}?treeSize=37`, { token });
    const entry = body.entries[1];
    const path = entry.auditPath.map(b64);
    path[2] = H(Buffer.from("forged"));
    expect(inclusionHolds(entry.leafIndex, 37, Buffer.from(entry.leaf), path, b64(body.head.rootHash))).toBe(false);
    expect(headSignatureHolds({ ...body.head, treeSize: 36 }, logKey)).toBe(false);
  });

  it("when the query is out of range, then 400 VALIDATION_ERROR (or 404 for a size never published), never a 500", async () => {
    const latest = (await app.request("GET", "/api/transparency/head")).body.treeSize as number;
    for (const query of ["from=0&to=3", "from=5&to=3", `from=1&to=${latest + 1}`, "from=a&to=3", "to=3"]) {
      const { status, body } = await app.request("GET", `/api/transparency/consistency?${query}`);
      expect(status, query).toBe(400);
      expect(body.error.code).toBe("VALIDATION_ERROR");
    }
    for (const query of ["start=5&end=5", "start=0&end=1002", "start=-1&end=3"]) {
      const { status } = await app.request("GET", `/api/transparency/entries?${query}`);
      expect(status, query).toBe(400);
    }
    expect((await app.request("GET", `/api/transparency/heads/${latest + 50}`)).status).toBe(404);
    expect((await app.request("GET", `/api/transparency/proof/${users[0]}?treeSize=${latest + 50}`, { token })).status).toBe(404);
    expect((await app.request("GET", `/api/transparency/proof/not-an-id`, { token })).status).toBe(400);
    expect((await app.request("GET", `/api/transparency/proof/${users[0]}`)).status).toBe(401);
  });

  it("when entries are paged past the log's end, then only the merged ones come back, in order", async () => {
    const latest = (await app.request("GET", "/api/transparency/head")).body.treeSize as number;
    const page = await entriesOf(latest - 3, latest + 10);
    expect(page.map((entry) => entry.leafIndex)).toEqual([latest - 3, latest - 2, latest - 1]);
  });
});

describe("verifyUserKey in the typed client", () => {
  /** The typed client with a fetch that lets a test rewrite one answer, as a hostile server would. */
  function clientFor(userToken: string, rewrite?: (path: string, body: any) => any) {
    return createApiClient({
      baseUrl: `${app.baseUrl}/api`,
      token: userToken,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        if (!rewrite) return response;
        const body = await response.json();
        const path = new URL(String(input)).pathname;
        return new Response(JSON.stringify(rewrite(path, body) ?? body), { status: response.status, headers: { "Content-Type": "application/json" } });
      },
    });
  }

  async function failureOf(promise: Promise<unknown>): Promise<KeyTransparencyFailure> {
    const error = await promise.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(KeyTransparencyError);
    return (error as KeyTransparencyError).reason;
  }

  let alice: Awaited<ReturnType<typeof registerUser>>;
  let bob: Awaited<ReturnType<typeof registerUser>>;
  let logKey: string;

  beforeAll(async () => {
    [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await mergeAll();
    logKey = (await app.request("GET", "/api/transparency/key")).body.publicKey;
  });

  it("when a registered user's served key is checked, then it is verified with the head to keep", async () => {
    const verified = await clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey });
    expect(verified.publicKey).toBe(alice.publicKey);
    expect(verified.version).toBe(1);
    expect(verified.head.treeSize).toBeGreaterThan(1);
    // Next time, from the kept head: consistent.
    const again = await clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey, trustedHead: verified.head });
    expect(again.head.treeSize).toBeGreaterThanOrEqual(verified.head.treeSize);
  });

  it("when the log key is not given, then it is fetched and returned for the app to pin", async () => {
    const verified = await clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey });
    expect(verified.logKey).toBe(logKey);
  });

  const proofPath = `/api/transparency/proof/`;
  const tamperings: Array<[string, KeyTransparencyFailure, (body: any) => void]> = [
    ["a leaf's timestamp", "inclusion", (body) => (body.entries[0].leaf = body.entries[0].leaf.replace(/"timestamp":"[^"]+"/, '"timestamp":"2020-01-01T00:00:00.000Z"'))],
    ["a leaf's key", "inclusion", (body) => (body.entries[0].leaf = body.entries[0].leaf.replace(/"publicKey":"[^"]+"/, `"publicKey":${JSON.stringify(newPublicKeyPem())}`))],
    ["a hash of the audit path", "inclusion", (body) => (body.entries[0].auditPath[0] = H(Buffer.from("x")).toString("base64"))],
    ["the head's signature", "head_signature", (body) => (body.head.signature = Buffer.from(b64(body.head.signature).map((byte, i) => (i === 5 ? byte ^ 1 : byte))).toString("base64"))],
    ["the head's root", "head_signature", (body) => (body.head.rootHash = H(Buffer.from("other root")).toString("base64"))],
    ["the head's size", "head_signature", (body) => (body.head.treeSize += 1)],
    ["the entry's user", "leaf", (body) => (body.entries[0].leaf = body.entries[0].leaf.replace(alice.id, bob.id))],
  ];
  for (const [what, reason, tamper] of tamperings) {
    it(`when the server tampers with ${what}, then verifyUserKey throws "${reason}"`, async () => {
      const client = clientFor(bob.token, (path, body) => {
        if (path.startsWith(proofPath)) tamper(body);
        return body;
      });
      expect(await failureOf(client.verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey }))).toBe(reason);
    });
  }

  it("when the server hides the user's binding, then verifyUserKey throws not_in_log", async () => {
    const client = clientFor(bob.token, (path, body) => (path.startsWith(proofPath) ? { ...body, entries: [] } : body));
    expect(await failureOf(client.verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey }))).toBe("not_in_log");
  });

  it("when the served key is not the user's newest binding, then verifyUserKey throws stale_key", async () => {
    expect(await failureOf(clientFor(bob.token).verifyUserKey(alice.id, { publicKey: newPublicKeyPem(), logKey }))).toBe("stale_key");
  });

  it("when the log key is not the one pinned, then verifyUserKey throws head_signature", async () => {
    const otherKey = createPublicKey(createPrivateKey(newPrivateKeyPem())).export({ type: "spki", format: "pem" }).toString();
    expect(await failureOf(clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey: otherKey }))).toBe("head_signature");
  });

  it("when the kept head belongs to a forked history (signed, same size, another root), then verifyUserKey throws consistency", async () => {
    const current = (await app.request("GET", "/api/transparency/head")).body as Head;
    const forked = signedHead(current.treeSize - 1, H(Buffer.from("a split view")));
    expect(await failureOf(clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey, trustedHead: forked }))).toBe("consistency");
    const ahead = signedHead(current.treeSize + 100, H(Buffer.from("a later view")));
    expect(await failureOf(clientFor(bob.token).verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey, trustedHead: ahead }))).toBe("consistency");
  });

  it("when the consistency proof is tampered with, then verifyUserKey throws consistency", async () => {
    const kept = (await app.request("GET", "/api/transparency/heads/3")).body as Head;
    const client = clientFor(bob.token, (path, body) => {
      if (path.endsWith("/transparency/consistency")) body.proof[0] = H(Buffer.from("y")).toString("base64");
      return body;
    });
    expect(await failureOf(client.verifyUserKey(alice.id, { publicKey: alice.publicKey, logKey, trustedHead: kept }))).toBe("consistency");
  });
});

/** A head signed with the test app's own log key: what a server holding the key could show one client. */
function signedHead(treeSize: number, root: Buffer): Head {
  const unsigned = { treeSize, rootHash: root.toString("base64"), timestamp: new Date().toISOString() };
  const signature = nodeSign("sha256", Buffer.from(JSON.stringify(unsigned)), { key: createPrivateKey(app.config.transparencyLogKey), dsaEncoding: "ieee-p1363" });
  return { ...unsigned, signature: signature.toString("base64") };
}

function newPrivateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

describe("POST /api/users/key", () => {
  const changeKey = (user: { token: string }, body: unknown) => app.request("POST", "/api/users/key", { token: user.token, body });
  const proofOf = async (userId: string, token: string) => (await app.request("GET", `/api/transparency/proof/${userId}`, { token })).body;

  it("when a user changes their key, then a binding is appended (version 2), other sessions end, and a connected contact gets key_changed", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    // Bob has Alice as a contact; Alice has Carol: both directions count.
    expect((await app.request("POST", "/api/users/add-contact", { token: bob.token, body: { username: alice.username } })).status).toBe(201);
    expect((await app.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: carol.username } })).status).toBe(201);
    await mergeAll();
    const aliceElsewhere = await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: alice.password } });
    const bobSocket = await connectAs(app, bob.token);
    const carolSocket = await connectAs(app, carol.token);
    const bobHears = collect(bobSocket, "key_changed");
    const carolHears = collect(carolSocket, "key_changed");
    const newKey = newPublicKeyPem();

    const response = await changeKey(alice, { publicKey: newKey, currentPassword: alice.password });

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true, user: { id: alice.id, publicKey: newKey } });
    await waitFor(() => bobHears.length > 0 && carolHears.length > 0, 10_000, "key_changed");
    expect(bobHears).toEqual([{ userId: alice.id, publicKey: newKey }]);
    expect(carolHears).toEqual([{ userId: alice.id, publicKey: newKey }]);
    // The caller's session stays; the other one ends.
    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).body.user.publicKey).toBe(newKey);
    expect((await app.request("GET", "/api/users/profile", { token: aliceElsewhere.body.token })).status).toBe(401);
    // Queued until the merge, then in the log as version 2.
    expect((await proofOf(alice.id, bob.token)).pending).toBe(true);
    await mergeAll();
    const proof = await proofOf(alice.id, bob.token);
    expect(proof.pending).toBeUndefined();
    expect(proof.entries.map((entry: { leaf: string }) => JSON.parse(entry.leaf))).toMatchObject([
      { userId: alice.id, publicKey: alice.publicKey, version: 1 },
      { userId: alice.id, publicKey: newKey, version: 2 },
    ]);
    const verified = await createApiClient({ baseUrl: `${app.baseUrl}/api`, token: bob.token }).verifyUserKey(alice.id, { publicKey: newKey });
    expect(verified.version).toBe(2);
    expect(verified.bindings.map((binding) => binding.publicKey)).toEqual([alice.publicKey, newKey]);
  });

  it("when a contact was offline, then key_changed waits for their next connection and, once acknowledged, never comes again", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await app.request("POST", "/api/users/add-contact", { token: bob.token, body: { username: alice.username } });
    const newKey = newPublicKeyPem();
    expect((await changeKey(alice, { publicKey: newKey, currentPassword: alice.password })).status).toBe(200);

    const first = await connectAs(app, bob.token);
    const heard: unknown[] = [];
    const acknowledged = new Promise<void>((resolve) =>
      first.on("key_changed", (payload: unknown, ack: () => void) => {
        heard.push(payload);
        ack();
        resolve();
      }),
    );
    await acknowledged;
    expect(heard).toEqual([{ userId: alice.id, publicKey: newKey }]);
    await waitFor(async () => (await app.db.collection("keyChangeNotices").where("recipientId", "==", bob.id).get()).empty, 5000, "notice deleted");
    first.disconnect();
    const second = await connectAs(app, bob.token);
    const again = collect(second, "key_changed");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(again).toEqual([]);
  });

  it("when the current password is wrong, then 401, nothing changes and no binding is queued", async () => {
    const alice = await registerUser(app);
    await mergeAll();
    const response = await changeKey(alice, { publicKey: newPublicKeyPem(), currentPassword: "not the password" });
    expect(response.status).toBe(401);
    expect(response.body.error.code).toBe("UNAUTHORIZED");
    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).body.user.publicKey).toBe(alice.publicKey);
    expect((await proofOf(alice.id, alice.token)).pending).toBeUndefined();
  });

  it("when the new key is not a P-256 or P-384 PEM key, then 400 VALIDATION_ERROR naming publicKey", async () => {
    const alice = await registerUser(app);
    const response = await changeKey(alice, { publicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", currentPassword: alice.password });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "publicKey" } });
  });
});

describe("npm run transparency:audit", () => {
  const SCRIPT = resolve(__dirname, "../scripts/transparency-audit.mjs");
  const audit = (apiBase: string, ...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(process.execPath, [SCRIPT, "--api", apiBase, ...args], (error, stdout, stderr) =>
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  /** The API behind a proxy that rewrites the entries it passes on, as a lying server would. */
  async function lyingProxy(rewrite: (entries: Array<{ leafIndex: number; leaf: string }>) => void): Promise<{ base: string; server: Server }> {
    const server = createServer(async (req, res) => {
      const upstream = await fetch(app.baseUrl + req.url!, { headers: req.headers.authorization ? { Authorization: req.headers.authorization } : {} });
      const body = (await upstream.json()) as { entries: Array<{ leafIndex: number; leaf: string }> };
      if (req.url!.startsWith("/api/transparency/entries")) rewrite(body.entries);
      res.writeHead(upstream.status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", () => listening()));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`, server };
  }

  it("when the log is intact, then the audit prints every key of the user (by id or username) and exits 0", async () => {
    const alice = await registerUser(app);
    const newKey = newPublicKeyPem();
    expect((await app.request("POST", "/api/users/key", { token: alice.token, body: { publicKey: newKey, currentPassword: alice.password } })).status).toBe(200);
    await mergeAll();
    const byId = await audit(`${app.baseUrl}/api`, "--user", alice.id);
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toContain("keys bound to " + alice.id + ": 2");
    expect(byId.stdout).toMatch(/version 1 .*\n[\s\S]*version 2 /);
    expect(byId.stdout).toContain(newKey.trim().split("\n")[1]);
    const byName = await audit(`${app.baseUrl}/api`, "--user", alice.username, "--token", alice.token);
    expect(byName.code, byName.stderr).toBe(0);
    expect(byName.stdout).toContain(`keys bound to ${alice.id}: 2`);
  });

  it("when the server serves an entry that is not in the signed tree, then the audit names the mismatch and exits 1", async () => {
    const { base, server } = await lyingProxy((entries) => {
      if (entries[0]) entries[0].leaf = entries[0].leaf.replace(/"timestamp":"[^"]+"/, '"timestamp":"2001-01-01T00:00:00.000Z"');
    });
    try {
      const result = await audit(base, "--user", newUserId());
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("MISMATCH");
      expect(result.stderr).toContain("recomputed root");
    } finally {
      server.close();
    }
  });
});
