// Benchmark: how the Firestore emulator's cost per write grows with snapshot listeners, which is what
// limits bench/relay.mjs on this machine (README, Benchmarks). Three layouts, each writing MESSAGES
// messages (create, then mark delivered) to LISTENERS receivers in turn:
//   baseline   one listener on the messages collection
//   relay      one listener per receiver on messages (receiverId == X, deliveredAt == null), as the relay does
//   inbox      one listener per receiver on a small collection of their own (inboxes/X/pending)
//
//   npm run bench:emulator              (builds first)
//   LISTENERS=100 MESSAGES=1200 npm run bench:emulator
import { randomBytes } from "node:crypto";
import lib from "./lib.cjs";

const LISTENERS = Number(process.env.LISTENERS ?? 100);
const MESSAGES = Number(process.env.MESSAGES ?? 1200);
const STEP = 200;

async function run(db, layout) {
  const { Timestamp } = await import("firebase-admin/firestore");
  const prefix = randomBytes(4).toString("hex");
  const messages = db.collection(`messages_${prefix}`);
  const inbox = (user) => db.collection(`inboxes_${prefix}/${user}/pending`);
  const receivers = layout === "baseline" ? [] : Array.from({ length: LISTENERS }, (_, i) => `u${i}`);
  const stops =
    layout === "baseline"
      ? [messages.where("receiverId", "==", "nobody").onSnapshot(() => undefined)]
      : receivers.map((user) =>
          layout === "relay"
            ? messages.where("receiverId", "==", user).where("deliveredAt", "==", null).orderBy("timestamp").limit(200).onSnapshot(() => undefined)
            : inbox(user).orderBy("timestamp").limit(200).onSnapshot(() => undefined),
        );
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const perStep = [];
  for (let n = 0; n < MESSAGES; n += STEP) {
    const t0 = performance.now();
    for (let i = n; i < n + STEP; i++) {
      const receiverId = `u${i % LISTENERS}`;
      const ref = messages.doc();
      const stored = { receiverId, deliveredAt: null, timestamp: Timestamp.now(), encryptedContent: "x".repeat(400) };
      if (layout === "inbox") {
        await db.batch().set(ref, stored).set(inbox(receiverId).doc(ref.id), stored).commit();
        await db.batch().update(ref, { deliveredAt: Timestamp.now() }).delete(inbox(receiverId).doc(ref.id)).commit();
      } else {
        await ref.set(stored);
        await ref.update({ deliveredAt: Timestamp.now() });
      }
    }
    perStep.push((performance.now() - t0) / (2 * STEP));
  }
  stops.forEach((stop) => stop());
  return perStep;
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
    const results = {};
    for (const layout of ["baseline", "relay", "inbox"]) results[layout] = await run(db, layout);
    const baseline = results.baseline.at(-1);
    console.log(`ms per commit on the emulator as messages accumulate (${LISTENERS} receivers; baseline: one listener)`);
    console.log(`layout      ${results.baseline.map((_, i) => `${(i + 1) * STEP} msgs`.padStart(10)).join("")}   last vs baseline`);
    for (const [layout, steps] of Object.entries(results)) {
      console.log(`${layout.padEnd(12)}${steps.map((ms) => ms.toFixed(1).padStart(10)).join("")}${(steps.at(-1) / baseline).toFixed(1).padStart(16)}x`);
    }
  } finally {
    await emulator?.stop();
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
