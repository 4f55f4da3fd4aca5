// Benchmark: what one message costs in Firestore documents read and written, with 1, 2 and 5 devices per
// receiver (issue 17, per-device delivery), beside the figures for one device before per-device delivery.
// Counts, not times: they do not depend on the machine's load.
//
//   npm run bench:devices            (builds first)
//   MESSAGES=20 npm run bench:devices
//
// Counted by instrumenting the Admin SDK in this process (@google-cloud/firestore's Firestore.request and
// requestStream, the funnel of every RPC), the way Firestore bills:
// - lookups: each document a get/getAll/transaction read returns (found or missing);
// - queries: each document a query returns, at least 1 per query (a count() aggregation: 1);
// - listener: each document change a snapshot listener receives (the relay's event feed);
// - writes: each write in a commit that succeeded (create, set, update, delete; a transform rides on its
//   write); `refused`: writes of commits refused by a precondition (devices acknowledging one message at
//   the same moment: all but one retry), not billed, but each cost a round trip and a read again.
// Everything in the process is counted: the API (REST send), the relay (routing, feed, acknowledgements,
// receipts, backlog pages, connection bookkeeping). The expiry sweep is off (it is a per-interval cost,
// not a per-message one) and presence heartbeats are slowed down past the run.
import { randomBytes, generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { io as connectSocket } from "socket.io-client";
import lib from "./lib.cjs";

const { createApp, createServices, loadConfig, attachRelay, messagePayload, useEmulator } = lib;
const MESSAGES = Number(process.env.MESSAGES ?? 20);
const DEVICE_COUNTS = (process.env.DEVICES ?? "1,2,5").split(",").map(Number);

/**
 * Before per-device delivery (commit 8a36b11, the branch's start, 2026-12-02), measured by this script with
 * MESSAGES=20 and one device: per message, in documents.
 */
const BASELINE = {
  commit: "8a36b11",
  date: "2026-12-02",
  live: { lookups: 9.0, queries: 0, listener: 1.0, writes: 5.0, refused: 0 },
  backlog: { lookups: 9.15, queries: 1.35, listener: 0, writes: 4.05, refused: 0 },
  // The reconnection alone, with 20 owed, in total.
  reconnect: { lookups: 43, queries: 27, listener: 0, writes: 21, refused: 0 },
};

// ---- counting -------------------------------------------------------------------------------------
const require = createRequire(import.meta.url);
const { Firestore } = require(require.resolve("@google-cloud/firestore", { paths: [new URL("../functions/lib", import.meta.url).pathname] }));
const counts = { lookups: 0, queries: 0, listener: 0, writes: 0, refused: 0 };
const resetCounts = () => Object.keys(counts).forEach((key) => (counts[key] = 0));
const snapshotCounts = () => ({ ...counts });

const originalRequest = Firestore.prototype.request;
Firestore.prototype.request = function (methodName, request, ...rest) {
  const answer = originalRequest.call(this, methodName, request, ...rest);
  if (methodName !== "commit" && methodName !== "batchWrite") return answer;
  const writes = request.writes?.length ?? 0;
  // A commit refused by a precondition (two devices acknowledging one message at once) writes nothing.
  return answer.then(
    (result) => ((counts.writes += writes), result),
    (error) => ((counts.refused += writes), Promise.reject(error)),
  );
};
const originalStream = Firestore.prototype.requestStream;
Firestore.prototype.requestStream = async function (methodName, ...rest) {
  const stream = await originalStream.call(this, methodName, ...rest);
  let queryDocs = 0;
  // The emulator sends a listener its whole result set again on every commit (bench/emulator-listeners.mjs);
  // Firestore sends and bills only changed documents: a version counts once.
  const seenVersions = new Set();
  const emit = stream.emit;
  // Counted as chunks pass, without adding a 'data' listener (which would switch the stream to flowing).
  stream.emit = function (event, chunk, ...more) {
    if (event === "data" && chunk) {
      if (methodName === "batchGetDocuments" && (chunk.found || chunk.missing)) counts.lookups += 1;
      if (methodName === "runQuery" && chunk.document) queryDocs += 1;
      if (methodName === "listen" && chunk.documentChange) {
        const { name, updateTime } = chunk.documentChange.document;
        const version = `${name}@${updateTime?.seconds}.${updateTime?.nanos}`;
        if (!seenVersions.has(version)) counts.listener += 1;
        seenVersions.add(version);
      }
    }
    if (event === "end" && (methodName === "runQuery" || methodName === "runAggregationQuery")) counts.queries += Math.max(1, queryDocs);
    return emit.call(this, event, chunk, ...more);
  };
  return stream;
};

// ---- the stack ------------------------------------------------------------------------------------
const waitFor = async (condition, what, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};
/** Lets the asynchronous tail of a phase (acknowledgements, receipts, listener changes) land: until no count moved for a second. */
const quiet = async () => {
  for (let last = "", waited = 0; ; waited++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = JSON.stringify(counts);
    if (now === last) return;
    // Something keeps reading or writing (a periodic task): fail loudly rather than wait for ever.
    if (waited >= 30) throw new Error("the Firestore counts never settled (a periodic task is running?)");
    last = now;
  }
};

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await useEmulator("demo-bench-devices");
  process.env.FIRESTORE_EMULATOR_HOST ??= emulator.hostPort;
  const projectId = `demo-bench-devices-${randomBytes(3).toString("hex")}`;
  const db = getFirestore(initializeApp({ projectId }, projectId));
  const config = loadConfig("test", {
    FIREBASE_PROJECT_ID: projectId,
    JWT_SECRET: randomBytes(32).toString("hex"),
    BCRYPT_COST: "4",
    SEND_RATE_BURST: "100000",
    REGISTER_IP_LIMIT: "1000000",
    API_IP_LIMIT: "1000000",
    API_USER_LIMIT: "1000000",
    SOCKET_CONNECT_LIMIT: "1000000",
    SOCKET_AUTH_LIMIT: "1000000",
    SOCKET_EVENT_LIMIT: "1000000",
    SOCKETS_PER_ADDRESS: "1000000",
    LOG_LEVEL: "error",
  });
  const deps = { db, config };
  const services = createServices(deps);
  const server = createServer(createApp(deps, services));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  // No transparency sequencer (0): its lease read every 0.5 s is not a message's cost, and it would keep
  // the counts from ever settling.
  const relay = await attachRelay(server, services, { expirySweepMs: 0, sequencerIntervalMs: 0, presenceTiming: { heartbeatMs: 3_600_000, staleAfterMs: 7_200_000 } });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const sockets = [];

  const post = async (path, body, token) => {
    const response = await fetch(`${origin}/api${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const json = await response.json();
    if (response.status >= 300) throw new Error(`${path}: ${response.status} ${json.error?.code}`);
    return json;
  };
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1", publicKeyEncoding: { type: "spki", format: "pem" } });
  const register = async (label) => {
    const name = `${label}_${randomBytes(4).toString("hex")}`;
    const password = "benchmark password";
    const result = await post("/auth/register", { email: `${name}@example.com`, username: name, password, publicKey, deviceName: "first" });
    return { id: result.user.id, email: `${name}@example.com`, password, token: result.token };
  };
  /** A device that acknowledges every message it gets, and remembers which. */
  const connectDevice = async (token) => {
    const socket = connectSocket(origin, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token } });
    sockets.push(socket);
    const device = { socket, received: new Set(), delivered: new Set() };
    socket.on("message_received", (message, ack) => {
      device.received.add(message.id);
      ack();
    });
    socket.on("message_delivered", ({ messageId }) => device.delivered.add(messageId));
    await new Promise((resolve, reject) => {
      socket.once("authenticated", resolve);
      socket.once("auth_error", (error) => reject(new Error(`auth_error ${error.code}`)));
    });
    return device;
  };

  const rows = [];
  try {
    for (const deviceCount of DEVICE_COUNTS) {
      const alice = await register("alice");
      const bob = await register("bob");
      const tokens = [bob.token];
      for (let i = 1; i < deviceCount; i++) tokens.push((await post("/auth/login", { email: bob.email, password: bob.password, deviceName: `device ${i}` })).token);
      const sender = await connectDevice(alice.token);
      const devices = [];
      for (const token of tokens) devices.push(await connectDevice(token));
      await quiet();

      // Live: every device connected; each gets each message and acknowledges it.
      resetCounts();
      const liveIds = [];
      for (let i = 0; i < MESSAGES; i++) liveIds.push((await post("/messages/send", messagePayload(bob.id), alice.token)).messageId);
      await waitFor(() => devices.every((device) => liveIds.every((id) => device.received.has(id))), "live delivery");
      await waitFor(() => liveIds.every((id) => sender.delivered.has(id)), "receipts");
      await quiet();
      const live = snapshotCounts();

      // Backlog: the first device is offline during the burst (the others get it live), then reconnects,
      // reads exactly its backlog and acknowledges it. Counted: the sends and the reconnection.
      devices[0].socket.disconnect();
      await quiet();
      resetCounts();
      const backlogIds = [];
      for (let i = 0; i < MESSAGES; i++) backlogIds.push((await post("/messages/send", messagePayload(bob.id), alice.token)).messageId);
      await waitFor(() => devices.slice(1).every((device) => backlogIds.every((id) => device.received.has(id))), "live delivery to the others");
      await quiet();
      const sent = snapshotCounts();
      resetCounts();
      const back = await connectDevice(tokens[0]);
      await waitFor(() => backlogIds.every((id) => back.received.has(id)), "the backlog");
      await waitFor(() => backlogIds.every((id) => sender.delivered.has(id)), "the backlog's receipts");
      await quiet();
      const reconnect = snapshotCounts();
      const backlog = Object.fromEntries(Object.keys(counts).map((key) => [key, sent[key] + reconnect[key]]));
      rows.push({ deviceCount, live, backlog, reconnect, duplicates: back.received.size - backlogIds.length });
      for (const socket of sockets.splice(0)) socket.disconnect();
      await quiet();
    }
  } finally {
    for (const socket of sockets) socket.disconnect();
    await relay.close();
    server.closeAllConnections();
    server.close();
    await emulator.stop();
  }

  const per = (value) => (value / MESSAGES).toFixed(2).padStart(7);
  const columns = (c) => [c.lookups, c.queries, c.listener, c.lookups + c.queries + c.listener, c.writes, c.refused];
  const line = (label, c, divide = true) => `${label.padEnd(38)}${columns(c).map((value) => (divide ? per(value) : String(value).padStart(7))).join(" ")}`;
  const baselineLine = (label, c) => `${label.padEnd(38)}${columns(c).map((value) => value.toFixed(2).padStart(7)).join(" ")}`;
  console.log(`\nFirestore documents per message (${MESSAGES} messages per phase; reads = lookups + queries + listener)\n`);
  console.log(`${"".padEnd(38)}${["lookups", "queries", "listen", "READS", "WRITES", "refused"].map((name) => name.padStart(7)).join(" ")}`);
  console.log(`live: sent, delivered to every device, acknowledged by each`);
  console.log(baselineLine(`  before (${BASELINE.commit}, ${BASELINE.date}), 1 device`, BASELINE.live));
  for (const row of rows) console.log(line(`  ${row.deviceCount} device${row.deviceCount > 1 ? "s" : ""}`, row.live));
  console.log(`backlog: sent while one device is offline, read and acknowledged by it on reconnection (the others live)`);
  console.log(baselineLine(`  before (${BASELINE.commit}, ${BASELINE.date}), 1 device`, BASELINE.backlog));
  for (const row of rows) console.log(line(`  ${row.deviceCount} device${row.deviceCount > 1 ? "s" : ""}`, row.backlog));
  console.log(`the reconnection alone (authentication, owed notices, backlog pages, acknowledgements), in total:`);
  if (MESSAGES === 20) console.log(line(`  before (${BASELINE.commit}), 1 device, 20 owed`, BASELINE.reconnect, false));
  for (const row of rows) console.log(line(`  ${row.deviceCount} device${row.deviceCount > 1 ? "s" : ""}, ${MESSAGES} owed`, row.reconnect, false));
  const duplicates = rows.reduce((sum, row) => sum + Math.max(0, row.duplicates), 0);
  console.log(`\nmessages received twice by a reconnecting device: ${duplicates} (target 0)\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
