// Benchmark: message sends through the API against bare Admin SDK transactions of the same shape,
// both on one Firestore emulator, in one run. Prints throughput, p50/p99 latency and the ratios.
// Then the API with telemetry off and on (issue 19: metrics and spans recorded as the local stack does,
// nothing exported), in ABBA order, side by side (target: under 5% apart). TELEMETRY_COMPARE=0 skips it.
//
//   npm run bench:messages            (builds first)
//   PAIRS=50 PER_PAIR=20 ONE_PAIR=60 npm run bench:messages
import { createHash, randomBytes } from "node:crypto";
import { Agent, createServer, request as httpRequest } from "node:http";
import { initializeApp } from "firebase-admin/app";
import { getFirestore, Timestamp } from "firebase-admin/firestore";
import lib from "./lib.cjs";

const { createApp, createServices, createTelemetry, loadConfig, newId, percentile, messagePayload, useEmulator } = lib;
const PAIRS = Number(process.env.PAIRS ?? 50);
const PER_PAIR = Number(process.env.PER_PAIR ?? 20);
const ONE_PAIR = Number(process.env.ONE_PAIR ?? 60);
const TELEMETRY_COMPARE = process.env.TELEMETRY_COMPARE !== "0";

function summarize(name, latencies, elapsedMs, failures) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    name,
    ok: latencies.length,
    failed: failures,
    perSecond: (latencies.length / elapsedMs) * 1000,
    p50: percentile(sorted, 50) ?? NaN,
    p99: percentile(sorted, 99) ?? NaN,
  };
}

async function timed(task) {
  const started = performance.now();
  try {
    await task();
    return { ms: performance.now() - started, ok: true };
  } catch (error) {
    return { ms: performance.now() - started, ok: false, error };
  }
}

/** `lanes` concurrent loops of `perLane` operations each. */
async function run(name, lanes, perLane, operation) {
  const latencies = [];
  let failures = 0;
  let firstError;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = 0; i < perLane; i++) {
        const result = await timed(() => operation(lane, i));
        if (result.ok) latencies.push(result.ms);
        else {
          failures += 1;
          firstError ??= result.error;
        }
      }
    }),
  );
  const summary = summarize(name, latencies, performance.now() - started, failures);
  const cpu = process.cpuUsage(cpuBefore);
  // This process's CPU (client and server alike) per operation: the emulator's own work is not in it.
  summary.cpuMsPerOp = (cpu.user + cpu.system) / 1000 / Math.max(1, lanes * perLane);
  if (firstError) summary.firstError = String(firstError.message ?? firstError).slice(0, 160);
  return summary;
}

/**
 * The same transaction the API runs, written directly: 6 reads (counter, nonce, receiver, message, the
 * receiver's presence, the sender's session), counter set, message and nonce create. Nobody is connected
 * here, so presence lists no relay instance and neither side writes a feed event.
 */
async function bareSend(db, senderId, receiverId) {
  const input = messagePayload(receiverId);
  const messageId = newId("msg");
  const pairRef = db.collection("pairCounters").doc(`${senderId}__${receiverId}`);
  const nonceRef = db.collection("nonces").doc(createHash("sha256").update(`${senderId}\n${input.nonce}`).digest("hex"));
  const receiverRef = db.collection("users").doc(receiverId);
  const messageRef = db.collection("messages").doc(messageId);
  await db.runTransaction(async (tx) => {
    const presenceRef = db.collection("presence").doc(receiverId);
    const sessionRef = db.collection("sessions").doc(`session_of_${senderId}`);
    const [pair, , , existing] = await tx.getAll(pairRef, nonceRef, receiverRef, messageRef, presenceRef, sessionRef);
    if (existing.exists) return;
    const now = Date.now();
    const sequenceNumber = (pair.data()?.lastSequence ?? 0) + 1;
    tx.set(pairRef, { lastSequence: sequenceNumber, lastTimestampMs: now, tokens: 60, tokensAtMs: now });
    tx.create(messageRef, {
      senderId,
      receiverId,
      conversationId: [senderId, receiverId].sort().join("__"),
      ...input,
      clientTimestamp: input.timestamp,
      sequenceNumber,
      timestamp: Timestamp.fromMillis(now),
      deliveredAt: null,
    });
    tx.create(nonceRef, { senderId, messageId, expiresAt: Timestamp.fromMillis(now + 900_000) });
  });
}

/**
 * The API with telemetry off and on, PAIRS x PER_PAIR sends each, in ABBA order (each section half the
 * sends), so that drift in background load falls on both.
 */
async function compareTelemetry(startApi) {
  const off = await startApi("telemetry-off", false);
  const on = await startApi("telemetry-on", true);
  const sides = { off, on };
  const section = (side) => (lane) => sides[side].post("/messages/send", messagePayload(sides[side].users[lane * 2 + 1].id), sides[side].users[lane * 2].token);
  await run("warm-up", 5, 4, section("off"));
  await run("warm-up", 5, 4, section("on"));
  const half = Math.max(1, Math.floor(PER_PAIR / 2));
  const parts = { off: [], on: [] };
  for (const side of ["off", "on", "on", "off"]) parts[side].push(await run(side, PAIRS, half, section(side)));
  const combine = (name, runs) => {
    const total = runs.reduce((sum, r) => sum + r.ok, 0);
    const seconds = runs.reduce((sum, r) => sum + r.ok / r.perSecond, 0);
    return {
      name,
      ok: total,
      failed: runs.reduce((sum, r) => sum + r.failed, 0),
      perSecond: total / seconds,
      // The sections' own p50 and p99, averaged (each section has PAIRS x PER_PAIR/2 sends).
      p50: runs.reduce((sum, r) => sum + r.p50, 0) / runs.length,
      p99: runs.reduce((sum, r) => sum + r.p99, 0) / runs.length,
      cpuMsPerOp: runs.reduce((sum, r) => sum + r.cpuMsPerOp, 0) / runs.length,
    };
  };
  const rows = [combine("API, telemetry off", parts.off), combine("API, telemetry on", parts.on)];
  console.log(`Telemetry off and on, ${PAIRS} pairs x ${PER_PAIR} sends each (ABBA), traces sampled at ${process.env.TRACE_SAMPLE_RATIO ?? "0.1"}\n`);
  console.log("workload                               ok  failed   sends/s    p50 ms    p99 ms  node CPU ms/send");
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(36)} ${String(r.ok).padStart(5)} ${String(r.failed).padStart(7)} ${r.perSecond.toFixed(1).padStart(9)} ${r.p50.toFixed(1).padStart(9)} ${r.p99.toFixed(1).padStart(9)}${r.cpuMsPerOp.toFixed(2).padStart(18)}`,
    );
  }
  const [a, b] = rows;
  const pct = (x, y) => `${(((x - y) / y) * 100).toFixed(1)}%`;
  console.log(`\ntelemetry on vs off: throughput ${pct(b.perSecond, a.perSecond)}, p50 ${pct(b.p50, a.p50)}, p99 ${pct(b.p99, a.p99)}, node CPU per send ${pct(b.cpuMsPerOp, a.cpuMsPerOp)}  (target: within 5%)\n`);
  off.close();
  on.close();
}

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await useEmulator("demo-bench");
  process.env.FIRESTORE_EMULATOR_HOST ??= emulator.hostPort;

  try {
    const projectFor = (label) => {
      const projectId = `demo-bench-${label}-${randomBytes(3).toString("hex")}`;
      return getFirestore(initializeApp({ projectId }, projectId));
    };

    // The API, over real HTTP. Rate limit raised: this measures the send path, not the limiter.
    // `telemetry`: record metrics and spans as the local stack does (Prometheus reader, no span kept).
    const startApi = async (label, telemetry) => {
      const db = projectFor(label);
      const config = loadConfig("test", {
        FIREBASE_PROJECT_ID: `demo-bench-${label}`,
        JWT_SECRET: randomBytes(32).toString("hex"),
        BCRYPT_COST: "4",
        SEND_RATE_BURST: "100000",
        // ... and so are the ceilings (README "Rate limits"): every bench user registers and sends from 127.0.0.1.
        REGISTER_IP_LIMIT: "1000000",
        API_IP_LIMIT: "1000000",
        API_USER_LIMIT: "1000000",
        LOG_LEVEL: "error",
        TELEMETRY: telemetry ? "on" : "off",
        // Production's default share of traces recorded (TRACE_SAMPLE_RATIO=1 to record every one).
        TRACE_SAMPLE_RATIO: process.env.TRACE_SAMPLE_RATIO ?? "0.1",
      });
      const deps = { db, config, telemetry: createTelemetry(config, { service: "messenger-api", exportAs: "local" }) };
      const server = createServer(createApp(deps, createServices(deps)));
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      const base = `http://127.0.0.1:${server.address().port}/api`;
      // node:http with keep-alive rather than fetch: the client shares this process's CPU with the
      // server, and undici's per-request cost would be counted against the API.
      const agent = new Agent({ keepAlive: true, maxSockets: 256 });
      const post = (path, payload, token) =>
        new Promise((resolve, reject) => {
          const body = JSON.stringify(payload);
          const request = httpRequest(
            base + path,
            {
              method: "POST",
              agent,
              headers: {
                "Content-Type": "application/json",
                "Content-Length": Buffer.byteLength(body),
                ...(token ? { Authorization: `Bearer ${token}` } : {}),
              },
            },
            (response) => {
              const chunks = [];
              response.on("data", (chunk) => chunks.push(chunk));
              response.on("end", () => {
                const json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
                if (response.statusCode >= 300) reject(new Error(`${response.statusCode} ${json.error?.code}`));
                else resolve(json);
              });
            },
          );
          request.on("error", reject);
          request.end(body);
        });
      const { publicKey } = await import("node:crypto").then(({ generateKeyPairSync }) =>
        generateKeyPairSync("ec", { namedCurve: "prime256v1", publicKeyEncoding: { type: "spki", format: "pem" } }),
      );
      const register = async (n) => {
        const name = `bench_${n}_${randomBytes(3).toString("hex")}`;
        const result = await post("/auth/register", { email: `${name}@example.com`, username: name, password: "benchmark password", publicKey });
        return { id: result.user.id, token: result.token };
      };
      const users = [];
      for (let i = 0; i < PAIRS * 2 + 2; i += 10) {
        users.push(...(await Promise.all(Array.from({ length: Math.min(10, PAIRS * 2 + 2 - i) }, (_, k) => register(i + k)))));
      }
      const close = () => {
        server.closeAllConnections();
        server.close();
      };
      return { post, users, close };
    };
    const api = await startApi("api", false);
    const { post, users } = api;

    // Bare transactions in a project of their own, with receivers present like the API's.
    const bareDb = projectFor("bare");
    const bareUsers = Array.from({ length: PAIRS * 2 + 2 }, () => newId("user"));
    await Promise.all(bareUsers.map((id) => bareDb.collection("users").doc(id).set({ username: id })));

    // Warm both paths up (connections, JIT), then measure; baseline and API alternate by section.
    await run("warm-up", 5, 4, (lane) => bareSend(bareDb, bareUsers[lane * 2], bareUsers[lane * 2 + 1]));
    await run("warm-up", 5, 4, (lane) => post("/messages/send", messagePayload(users[lane * 2 + 1].id), users[lane * 2].token));

    const results = [];
    results.push(await run(`baseline: ${PAIRS} pairs x ${PER_PAIR}`, PAIRS, PER_PAIR, (lane) => bareSend(bareDb, bareUsers[lane * 2], bareUsers[lane * 2 + 1])));
    results.push(await run(`API:      ${PAIRS} pairs x ${PER_PAIR}`, PAIRS, PER_PAIR, (lane) => post("/messages/send", messagePayload(users[lane * 2 + 1].id), users[lane * 2].token)));
    const [a, b] = [bareUsers[PAIRS * 2], bareUsers[PAIRS * 2 + 1]];
    results.push(await run(`baseline: ${ONE_PAIR} concurrent, one pair`, ONE_PAIR, 1, () => bareSend(bareDb, a, b)));
    const [alice, bob] = [users[PAIRS * 2], users[PAIRS * 2 + 1]];
    results.push(await run(`API:      ${ONE_PAIR} concurrent, one pair`, ONE_PAIR, 1, () => post("/messages/send", messagePayload(bob.id), alice.token)));

    console.log("\nMessage sends on the Firestore emulator\n");
    console.log("workload                               ok  failed   sends/s    p50 ms    p99 ms  node CPU ms/send");
    for (const r of results) {
      console.log(
        `${r.name.padEnd(36)} ${String(r.ok).padStart(5)} ${String(r.failed).padStart(7)} ${r.perSecond.toFixed(1).padStart(9)} ${r.p50.toFixed(1).padStart(9)} ${r.p99.toFixed(1).padStart(9)}${r.cpuMsPerOp.toFixed(2).padStart(18)}` +
          (r.firstError ? `   first error: ${r.firstError}` : ""),
      );
    }
    const ratio = (x, y) => (y.perSecond > 0 ? (x.perSecond / y.perSecond).toFixed(2) : "n/a");
    console.log(`\nratio API/baseline throughput, ${PAIRS} pairs: ${ratio(results[1], results[0])}  (target >= 0.70)`);
    console.log(`ratio API/baseline throughput, one pair:  ${ratio(results[3], results[2])}`);
    console.log(`one pair through the API: ${results[3].ok}/${ONE_PAIR} succeeded (target: all)\n`);

    api.close();

    if (TELEMETRY_COMPARE) await compareTelemetry(startApi);
  } finally {
    await emulator?.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
