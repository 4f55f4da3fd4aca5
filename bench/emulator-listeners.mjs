// Benchmark: the Firestore emulator's cost per commit as connected users grow, for the relay's two
// designs, which is what limits bench/relay.mjs on this machine (README, Benchmarks).
//
// 1. ms per commit with N connected users (USERS, default 0, 50, 100, 200), each cell in fresh
//    collections, MESSAGES messages to the connected users in turn (or to offline ones when N is 0).
//    Each message is the send transaction (pair counter, nonce, receiver, message, presence, session
//    read; counter, message, nonce written) and then its delivered update, as the relay does:
//      baseline       one idle listener; no event written
//      per-user       a listener per connected user on messages (receiverId == X, deliveredAt == null),
//                     as the relay had: the contrast
//      instance feed  the relay now: ONE listener on the instance's feed (relayInstances/I/relayEvents,
//                     createdAt >= start), the transaction also writing the event for the receiver
//    The feed's cost should not grow with N: connected users cost a presence document, not a listener.
// 2. Why the relay rolls its feed listener: the emulator answers every change to a listened query by
//    sending the listener its whole result set again (RESET, every document, CURRENT), so each event
//    costs in proportion to the events the listener has seen since it opened. Per commit and from
//    commit to the listener's snapshot, with one listener open since the start as its result set grows,
//    next to one re-opened before each step (as the relay's roll does).
//
//   npm run bench:emulator              (builds first; about 3 minutes on 2 cores)
//   USERS=0,50,100,200 MESSAGES=100 FEED_MESSAGES=800 npm run bench:emulator
import { createHash, randomBytes } from "node:crypto";
import lib from "./lib.cjs";

const USERS = (process.env.USERS ?? "0,50,100,200").split(",").map(Number);
const MESSAGES = Number(process.env.MESSAGES ?? 100);
const FEED_MESSAGES = Number(process.env.FEED_MESSAGES ?? 800);
const FEED_STEP = 200;
/** Receivers when nobody is connected: offline users, so no event is written and no listener matches. */
const OFFLINE_RECEIVERS = 50;
const INSTANCE = "bench_instance";

/** Fresh collections (a prefix of their own), N connected users with their presence, and the layout's listeners. */
async function setUp(db, layout, connected) {
  const { Timestamp } = await import("firebase-admin/firestore");
  const prefix = randomBytes(4).toString("hex");
  const col = (name) => db.collection(`${name}_${prefix}`);
  const feed = () => col("relayInstances").doc(INSTANCE).collection("relayEvents");
  const receivers = Array.from({ length: connected || OFFLINE_RECEIVERS }, (_, i) => `u${i}`);
  const batch = db.batch();
  for (const user of [...receivers, "sender"]) {
    batch.set(col("users").doc(user), { username: user });
    batch.set(col("sessions").doc(`s_${user}`), { userId: user, revokedAt: null });
    batch.set(col("presence").doc(user), { instances: layout === "feed" && connected > 0 && user !== "sender" ? { [INSTANCE]: true } : {} });
  }
  await batch.commit();
  // When each event first reached the feed's listener (of any generation).
  const arrivals = new Map();
  const openFeed = () =>
    feed()
      .where("createdAt", ">=", Timestamp.fromMillis(Date.now() - 2000))
      .orderBy("createdAt")
      .onSnapshot((snapshot) => {
        const now = performance.now();
        for (const change of snapshot.docChanges()) if (!arrivals.has(change.doc.id)) arrivals.set(change.doc.id, now);
      });
  const stops =
    layout === "per-user"
      ? receivers.slice(0, connected).map((user) =>
          col("messages").where("receiverId", "==", user).where("deliveredAt", "==", null).orderBy("timestamp").limit(200).onSnapshot(() => undefined),
        )
      : layout === "feed"
        ? [openFeed()]
        : [col("messages").where("receiverId", "==", "nobody").onSnapshot(() => undefined)];
  // Let the listeners answer before anything is timed.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return { col, receivers, stops, openFeed, arrivals };
}

/** One message as the relay stores and delivers it: the send transaction, then the delivered update. */
async function sendAndDeliver(db, { col }, receiverId) {
  const { Timestamp, FieldValue } = await import("firebase-admin/firestore");
  const messageId = `msg_${randomBytes(8).toString("hex")}`;
  const refs = [
    col("pairCounters").doc(`sender__${receiverId}`),
    col("nonces").doc(createHash("sha256").update(messageId).digest("hex")),
    col("users").doc(receiverId),
    col("messages").doc(messageId),
    col("presence").doc(receiverId),
    col("sessions").doc("s_sender"),
  ];
  const stored = { senderId: "sender", receiverId, deliveredAt: null, timestamp: Timestamp.now(), encryptedContent: "x".repeat(400) };
  await db.runTransaction(async (tx) => {
    const [pair, , , , presence] = await tx.getAll(...refs);
    tx.set(refs[0], { lastSequence: (pair.data()?.lastSequence ?? 0) + 1 });
    tx.create(refs[3], stored);
    tx.create(refs[1], { messageId });
    for (const instance of Object.keys(presence.data()?.instances ?? {})) {
      tx.create(col("relayInstances").doc(instance).collection("relayEvents").doc(messageId), {
        userId: receiverId,
        type: "message_received",
        payload: { id: messageId, ...stored, timestamp: stored.timestamp.toMillis() },
        createdAt: FieldValue.serverTimestamp(),
      });
    }
  });
  const committedAt = performance.now();
  await refs[3].update({ deliveredAt: Timestamp.now() });
  return { messageId, committedAt };
}

/** ms per commit (two per message) over `count` messages to the receivers in turn; p50 ms from a send's commit to the feed listener. */
async function timeMessages(db, setup, count, offset = 0) {
  const t0 = performance.now();
  const sent = [];
  for (let i = offset; i < offset + count; i++) sent.push(await sendAndDeliver(db, setup, setup.receivers[i % setup.receivers.length]));
  const perCommit = (performance.now() - t0) / (2 * count);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  // An event can reach the listener before its transaction's commit returns to us: that counts as 0.
  const delays = sent.map(({ messageId, committedAt }) => Math.max(0, (setup.arrivals.get(messageId) ?? Infinity) - committedAt)).sort((a, b) => a - b);
  return { perCommit, toListener: lib.percentile(delays, 50) };
}

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await lib.useEmulator("demo-bench-listeners");
  process.env.FIRESTORE_EMULATOR_HOST ??= emulator.hostPort;
  const { initializeApp } = await import("firebase-admin/app");
  const { getFirestore } = await import("firebase-admin/firestore");
  initializeApp({ projectId: `demo-bench-listeners-${randomBytes(3).toString("hex")}` });
  const db = getFirestore();
  try {
    // Warm-up: connections, JIT, the emulator's own start.
    const warm = await setUp(db, "baseline", 0);
    await timeMessages(db, warm, 100);
    warm.stops.forEach((stop) => stop());

    const layouts = { baseline: "baseline (1 idle listener)", "per-user": "per-user listeners (old)", feed: "instance feed (new)" };
    const results = Object.fromEntries(Object.keys(layouts).map((layout) => [layout, []]));
    // Layouts side by side for each number of users, so a change in background load falls on all three.
    for (const connected of USERS) {
      for (const layout of Object.keys(layouts)) {
        const setup = await setUp(db, layout, connected);
        await lib.settleEmulator(process.env.FIRESTORE_EMULATOR_HOST);
        results[layout].push((await timeMessages(db, setup, MESSAGES)).perCommit);
        setup.stops.forEach((stop) => stop());
        console.error(`  ${layout}, ${connected} users: ${results[layout].at(-1).toFixed(1)} ms per commit`);
      }
    }

    // The feed's result set: one listener open since the start, against one re-opened before each step.
    const growing = [];
    const rolled = [];
    for (const [row, roll] of [[growing, false], [rolled, true]]) {
      const setup = await setUp(db, "feed", 200);
      await lib.settleEmulator(process.env.FIRESTORE_EMULATOR_HOST);
      for (let n = 0; n < FEED_MESSAGES; n += FEED_STEP) {
        if (roll && n > 0) {
          setup.stops.forEach((stop) => stop());
          setup.stops = [setup.openFeed()];
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        row.push(await timeMessages(db, setup, FEED_STEP, n));
      }
      setup.stops.forEach((stop) => stop());
    }

    const last = USERS.length - 1;
    console.log(`\nms per commit on the emulator (a send transaction or a delivered update), ${MESSAGES} messages per cell, by connected users`);
    console.log(`layout                        ${USERS.map((n) => `${n} users`.padStart(11)).join("")}   ${USERS[last]} users vs baseline`);
    for (const [layout, label] of Object.entries(layouts)) {
      const steps = results[layout];
      console.log(`${label.padEnd(30)}${steps.map((ms) => ms.toFixed(1).padStart(11)).join("")}${(steps[last] / results.baseline[last]).toFixed(1).padStart(20)}x`);
    }
    console.log(`\nInstance feed, 200 users, as events accumulate in the feed listener's result set (ms)`);
    console.log(`listener                                    ${growing.map((_, i) => `${(i + 1) * FEED_STEP} msgs`.padStart(11)).join("")}`);
    const line = (label, row, key) => console.log(`${label.padEnd(44)}${row.map((r) => r[key].toFixed(1).padStart(11)).join("")}`);
    line("open since the start: per commit", growing, "perCommit");
    line("                      commit -> listener p50", growing, "toListener");
    line(`re-opened every ${FEED_STEP}:  per commit`, rolled, "perCommit");
    line("                      commit -> listener p50", rolled, "toListener");
    console.log("");
  } finally {
    await emulator?.stop();
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
