// Benchmark: the key-transparency log on the Firestore emulator. Prints
//  1. appends per second the sequencer merges (merges of up to 120 under the lease), and the merge delay
//     at a steady load with the sequencer ticking every 500 ms as in the relay;
//  2. proof latency and Firestore documents read per proof at 10,000 and 100,000 entries (logs seeded
//     in their stored form directly, in big batches), next to a baseline: one plain document read.
//     Proof reads must grow with log n, not n.
//
//   npm run bench:transparency                        (builds first)
//   APPENDS=3000 RATE=20 DURATION=30 SIZES=10000,100000 PROOFS=200 npm run bench:transparency
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { initializeApp } from "firebase-admin/app";
import { getFirestore, Timestamp } from "firebase-admin/firestore";
import lib from "./lib.cjs";

const require = createRequire(import.meta.url);
const { TransparencyRepository } = require("../functions/lib/transparency/repository.js");
const { Sequencer, SEQUENCER_INTERVAL_MS } = require("../functions/lib/transparency/sequencer.js");
const { TransparencyService, signHead } = require("../functions/lib/transparency/service.js");
const { createLogSigner } = require("../functions/lib/transparency/log-key.js");
const { appendLeaves, inclusionPath, consistencyPath, leafHash, neededNodes, rootHash } = require("../functions/lib/transparency/merkle.js");
const { percentile, useEmulator } = lib;

const APPENDS = Number(process.env.APPENDS ?? 3000);
const PRODUCERS = Number(process.env.PRODUCERS ?? 8);
const RATE = Number(process.env.RATE ?? 20);
const DURATION = Number(process.env.DURATION ?? 30);
const SIZES = (process.env.SIZES ?? "10000,100000").split(",").map(Number);
const PROOFS = Number(process.env.PROOFS ?? 200);

const systemClock = { now: () => new Date() };
const quietLogger = { debug() {}, info() {}, warn: (message, fields) => console.warn(message, fields?.error?.message ?? ""), error: console.error };
const pem = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({ type: "spki", format: "pem" }).toString();
const userId = () => `user_${randomBytes(18).toString("base64url")}`;
const bindingId = () => `bind_${randomBytes(18).toString("base64url")}`;
const signer = createLogSigner(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString());
const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "-");

const projectFor = (label) => {
  const projectId = `demo-bench-kt-${label}-${randomBytes(3).toString("hex")}`;
  return getFirestore(initializeApp({ projectId }, projectId));
};

/** Queues `count` bindings, 10 per transaction (as 10 registrations would), from PRODUCERS concurrent producers. */
async function queueBindings(log, db, count, keys) {
  let queued = 0;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (queued < count) {
        const batch = Math.min(10, count - queued);
        queued += batch;
        await db.runTransaction(async (tx) => {
          const now = new Date();
          for (let i = 0; i < batch; i++) log.enqueue(tx, bindingId(), { userId: userId(), publicKey: keys[i % keys.length], version: 1, timestamp: now.toISOString() }, now);
        });
      }
    }),
  );
}

/** 1a. Capacity: APPENDS bindings waiting, then the sequencer alone drains them (merges back to back, as a tick does). */
async function mergeCapacity(keys) {
  const db = projectFor("capacity");
  const log = new TransparencyRepository(db);
  await queueBindings(log, db, APPENDS, keys);
  const sequencer = new Sequencer(log, signer, systemClock, quietLogger);
  const started = performance.now();
  let merged = 0;
  let merges = 0;
  while (merged < APPENDS) {
    const results = await sequencer.run();
    merges += results.length;
    merged += results.reduce((sum, result) => sum + result.merged, 0);
  }
  const elapsedMs = performance.now() - started;
  return { merged, merges, elapsedMs, perSecond: (merged / elapsedMs) * 1000 };
}

/**
 * 1b. Merge delay at a steady load: RATE registrations' bindings per second for DURATION seconds (one
 * transaction each), the sequencer ticking every SEQUENCER_INTERVAL_MS as in the relay.
 */
async function steadyDelay(keys) {
  const db = projectFor("steady");
  const log = new TransparencyRepository(db);
  const sequencer = new Sequencer(log, signer, systemClock, quietLogger);
  const total = RATE * DURATION;
  const delays = [];
  let merged = 0;
  let producing = true;
  const ticking = (async () => {
    while (producing || merged < total) {
      const tickStart = Date.now();
      for (const result of await sequencer.run()) {
        merged += result.merged;
        const doneAt = Date.now();
        for (const queuedAt of result.queuedAtMs) delays.push(doneAt - queuedAt);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, SEQUENCER_INTERVAL_MS - (Date.now() - tickStart))));
    }
  })();
  const started = Date.now();
  const writes = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    writes.push(
      db.runTransaction(async (tx) => {
        const now = new Date();
        log.enqueue(tx, bindingId(), { userId: userId(), publicKey: keys[i % keys.length], version: 1, timestamp: now.toISOString() }, now);
      }),
    );
  }
  await Promise.all(writes);
  producing = false;
  await ticking;
  const sorted = delays.sort((a, b) => a - b);
  return { merged, offered: (total / (Date.now() - started)) * 1000, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] };
}

/** Writes a log of `size` leaves in its stored form (leaves, perfect subtrees, one signed head) with a BulkWriter. */
async function seedLog(db, size) {
  const key = pem();
  const users = [];
  // Unthrottled: the 500/50/5 ramp-up is for production traffic, not for seeding an emulator.
  const writer = db.bulkWriter({ throttling: false });
  writer.onWriteError((error) => error.failedAttempts < 5);
  const hashes = new Map();
  const lookup = (node) => hashes.get(`L${node.level}-${node.index}`);
  const CHUNK = 1000;
  for (let start = 0; start < size; start += CHUNK) {
    const leaves = [];
    for (let i = start; i < Math.min(size, start + CHUNK); i++) {
      const id = userId();
      users.push(id);
      const leaf = JSON.stringify({ userId: id, publicKey: key, version: 1, timestamp: new Date(1_700_000_000_000 + i).toISOString() });
      leaves.push(leaf);
      void writer.create(db.collection("transparencyLeaves").doc(String(i)), { leafIndex: i, userId: id, leaf, bindingId: bindingId() });
      void writer.create(db.collection("transparencyUsers").doc(id), { leafIndices: [i] });
    }
    for (const [nodeKey, { hash }] of appendLeaves(start, leaves.map((leaf) => leafHash(Buffer.from(leaf))), lookup)) {
      hashes.set(nodeKey, hash);
      void writer.create(db.collection("transparencyNodes").doc(nodeKey), { hash: hash.toString("base64") });
    }
  }
  const head = signHead(signer, size, rootHash(size, lookup), new Date());
  void writer.set(db.collection("transparencyHeads").doc(String(size)), head);
  void writer.set(db.collection("transparencyLog").doc("head"), head);
  await writer.close();
  return users;
}

async function proofLatency(size) {
  const db = projectFor(`proofs-${size}`);
  const seedStarted = performance.now();
  const users = await seedLog(db, size);
  const seedMs = performance.now() - seedStarted;
  const service = new TransparencyService(new TransparencyRepository(db), signer, systemClock);
  const timings = { proof: [], consistency: [], baseline: [] };
  const reads = [];
  for (let i = 0; i < PROOFS; i++) {
    const leafIndex = Math.floor(Math.random() * size);
    let started = performance.now();
    await db.collection("transparencyLog").doc("head").get();
    timings.baseline.push(performance.now() - started);
    started = performance.now();
    const proof = await service.proof(users[leafIndex]);
    timings.proof.push(performance.now() - started);
    if (proof.entries[0]?.leafIndex !== leafIndex) throw new Error("proof for the wrong leaf");
    // Documents a proof reads, all by id: the head, the user's index, the user's leaves, the subtrees of the path.
    reads.push(2 + proof.entries.length + neededNodes((lookup) => inclusionPath(leafIndex, size, lookup)).length);
    const from = 1 + Math.floor(Math.random() * (size - 1));
    started = performance.now();
    await service.consistency(from, size);
    timings.consistency.push(performance.now() - started);
  }
  const stats = (list) => {
    const sorted = [...list].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  };
  const consistencyReads = Math.max(...Array.from({ length: 50 }, () => neededNodes((lookup) => consistencyPath(1 + Math.floor(Math.random() * (size - 1)), size, lookup)).length)) + 1;
  return { size, seedMs, proof: stats(timings.proof), consistency: stats(timings.consistency), baseline: stats(timings.baseline), reads: Math.max(...reads), consistencyReads };
}

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await useEmulator("demo-bench-kt");
  process.env.FIRESTORE_EMULATOR_HOST ??= emulator.hostPort;
  try {
    console.log(`key transparency on the Firestore emulator, ${new Date().toISOString()}`);
    const keys = Array.from({ length: 50 }, pem); // key generation is not what is measured
    const capacity = await mergeCapacity(keys);
    console.log(
      `\nappends: ${capacity.merged} waiting bindings merged by the sequencer alone in ${fmt(capacity.elapsedMs / 1000, 2)} s (${capacity.merges} merges)` +
        `\n  ${fmt(capacity.perSecond)} appends/s`,
    );
    const steady = await steadyDelay(keys);
    console.log(
      `\nmerge delay at a steady ${RATE} bindings/s for ${DURATION} s (offered ${fmt(steady.offered)}/s; one transaction each; the sequencer ticking every ${SEQUENCER_INTERVAL_MS} ms)` +
        `\n  p50 ${steady.p50} ms, p99 ${steady.p99} ms, max ${steady.max} ms (bound: 5000 ms)`,
    );
    console.log(`\nproofs (${PROOFS} per size, random leaves; baseline: one document read in the same loop)`);
    console.log("| entries | seeded in | inclusion p50 / p99 ms | consistency p50 / p99 ms | baseline read p50 / p99 ms | docs read per inclusion proof | per consistency proof |");
    console.log("| --- | --- | --- | --- | --- | --- | --- |");
    for (const size of SIZES) {
      const r = await proofLatency(size);
      console.log(
        `| ${size.toLocaleString("en")} | ${fmt(r.seedMs / 1000)} s | ${fmt(r.proof.p50)} / ${fmt(r.proof.p99)} | ${fmt(r.consistency.p50)} / ${fmt(r.consistency.p99)} | ${fmt(r.baseline.p50)} / ${fmt(r.baseline.p99)} | ${r.reads} | ${r.consistencyReads} |`,
      );
    }
  } finally {
    await emulator.stop();
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
