// Benchmark: logins (bcrypt compares at BCRYPT_COST, 12 by default) in the worker-thread pool against the
// hasher before it (bcryptjs's async compare on the main thread, the baseline), in one run (issue #15).
//
// What a login costs everyone else on the instance: while it runs, a client process pings this process
// every PING_MS over TCP (one line, echoed back) and records each round trip, as a socket event or a
// request would see it. The pings go out on the client's own clock, so a stalled event loop shows up
// in every ping it holds back. Measured idle, then during batches of 10 and of 50 logins started at
// once, with how many logins per second they completed. Batches of 10 run ROUNDS times in ABBA order
// (baseline, pool, pool, baseline) and are pooled per side, so a drift in background load on a shared
// machine favours neither; then one batch of 50 each.
//
//   npm run bench:passwords                 (builds first)
//   BCRYPT_COST=12 PASSWORD_WORKERS=2 ROUNDS=3 PING_MS=10 IDLE_MS=3000 npm run bench:passwords
import { fork } from "node:child_process";
import { createServer, connect } from "node:net";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import bcrypt from "bcryptjs";
import lib from "./lib.cjs";

const { percentile, loadConfig } = lib;
const PING_MS = Number(process.env.PING_MS ?? 10);
const IDLE_MS = Number(process.env.IDLE_MS ?? 3000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const PASSWORD = "correct horse battery staple";

if (process.argv[2] === "pinger") runPinger(Number(process.argv[3]));
else await main();

/** The client: pings every PING_MS while told to, then reports the round trips. */
function runPinger(port) {
  const socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  const sentAt = new Map();
  let rtts = [];
  let seq = 0;
  let timer;
  let buffered = "";
  socket.on("data", (chunk) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) {
      const t0 = sentAt.get(line);
      if (t0 === undefined) continue;
      sentAt.delete(line);
      rtts.push(performance.now() - t0);
    }
  });
  process.on("message", async (message) => {
    if (message === "start") {
      rtts = [];
      timer = setInterval(() => {
        const id = String(++seq);
        sentAt.set(id, performance.now());
        socket.write(`${id}\n`);
      }, PING_MS);
    } else if (message === "stop") {
      clearInterval(timer);
      // Pings held back by the server arrive once its loop is free: wait for them, they are the point.
      const deadline = Date.now() + 10_000;
      while (sentAt.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      process.send({ rtts, lost: sentAt.size });
      sentAt.clear();
    } else if (message === "exit") {
      socket.destroy();
      process.exit(0);
    }
  });
  socket.on("connect", () => process.send("ready"));
}

async function main() {
  const config = loadConfig("local", process.env, { jwtSecret: "x".repeat(32) });
  const cost = config.bcryptCost;
  const { createPasswordHasher } = await import("../functions/lib/auth/passwords.js");
  const pool = createPasswordHasher({ cost, workers: config.passwordWorkers });
  const inThread = { verify: (password, hash) => bcrypt.compare(password, hash) }; // the hasher before the pool
  const stored = bcrypt.hashSync(PASSWORD, cost);

  // The process doing the logins also serves the pings: a trivial echo, like a trivial socket event.
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => socket.write(chunk));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const pinger = fork(fileURLToPath(import.meta.url), ["pinger", String(server.address().port)]);
  await new Promise((resolve) => pinger.once("message", resolve));
  const measure = async (work) => {
    pinger.send("start");
    const started = performance.now();
    await work();
    const seconds = (performance.now() - started) / 1000;
    pinger.send("stop");
    const { rtts, lost } = await new Promise((resolve) => pinger.once("message", resolve));
    return { seconds, rtts, lost };
  };
  const logins = (hasher, count) => async () => {
    const results = await Promise.all(Array.from({ length: count }, () => hasher.verify(PASSWORD, stored)));
    if (!results.every(Boolean)) throw new Error("a login failed");
  };
  const idle = () => new Promise((resolve) => setTimeout(resolve, IDLE_MS));

  console.error(`bcrypt cost ${cost}; pool of ${config.passwordWorkers} workers; ${availableParallelism()} cores; node ${process.version}`);
  // Warm-up: JIT for both, and the pool's workers started (they start on first need).
  await logins(inThread, 2)();
  await logins(pool, config.passwordWorkers)();

  // Per side and phase: every batch's pings and seconds, pooled.
  const r = { baseline: {}, pool: {} };
  const phase = async (side, name, work) => {
    const m = await measure(work);
    const sorted = [...m.rtts].sort((a, b) => a - b);
    console.error(`  ${side} ${name}: ${m.seconds.toFixed(2)} s, ping p50 ${percentile(sorted, 50)?.toFixed(1)} p99 ${percentile(sorted, 99)?.toFixed(1)} ms (${sorted.length} pings, ${m.lost} lost)`);
    const all = (r[side][name] ??= { seconds: 0, rtts: [], batches: 0 });
    all.seconds += m.seconds;
    all.rtts.push(...m.rtts);
    all.batches += 1;
  };
  await phase("baseline", "idle", idle);
  await phase("pool", "idle", idle);
  for (let round = 0; round < ROUNDS; round++) {
    await phase("baseline", "10", logins(inThread, 10));
    await phase("pool", "10", logins(pool, 10));
    await phase("pool", "10", logins(pool, 10));
    await phase("baseline", "10", logins(inThread, 10));
  }
  await phase("pool", "50", logins(pool, 50));
  await phase("baseline", "50", logins(inThread, 50));
  for (const side of Object.values(r)) {
    for (const m of Object.values(side)) {
      const sorted = m.rtts.sort((a, b) => a - b);
      Object.assign(m, { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) });
    }
  }

  pinger.send("exit");
  server.close();
  await pool.close();

  const ms = (value) => (value === undefined ? "-" : `${value.toFixed(1)} ms`).padStart(12);
  const perSecond = (m, count) => (count * m.batches) / m.seconds;
  const rows = [];
  const latencyRow = (label, name, key, target) => {
    const before = r.baseline[name][key];
    const after = r.pool[name][key];
    const mark = target === undefined ? "" : after < target ? `  (target < ${target} ms: met)` : `  (target < ${target} ms: MISSED)`;
    rows.push(`${label.padEnd(34)}${ms(before)}${ms(after)}${`${(after / before).toFixed(2)}x`.padStart(11)}${mark}`);
  };
  const rateRow = (label, name, count, target) => {
    const before = perSecond(r.baseline[name], count);
    const after = perSecond(r.pool[name], count);
    const x = after / before;
    const mark = target === undefined ? "" : `  (target >= ${target}x: ${x >= target ? "met" : "MISSED"})`;
    rows.push(`${label.padEnd(34)}${`${before.toFixed(2)}/s`.padStart(12)}${`${after.toFixed(2)}/s`.padStart(12)}${`${x.toFixed(2)}x`.padStart(11)}${mark}`);
  };
  latencyRow("ping p99, idle", "idle", "p99");
  latencyRow("ping p50, during 10 logins", "10", "p50");
  latencyRow("ping p99, during 10 logins", "10", "p99", 50);
  latencyRow("ping max, during 10 logins", "10", "max");
  rateRow("logins per second, 10 at once", "10", 10, 1.5);
  latencyRow("ping p50, during 50 logins", "50", "p50");
  latencyRow("ping p99, during 50 logins", "50", "p99");
  latencyRow("ping max, during 50 logins", "50", "max");
  rateRow("logins per second, 50 at once", "50", 50, 1.5);

  console.log(
    `\nLogins (bcrypt compare, cost ${cost}) on ${availableParallelism()} cores, pool of ${config.passwordWorkers} workers, ` +
      `${ROUNDS * 2} batches of 10 and 1 of 50 per side, ${new Date().toISOString().slice(0, 10)}`,
  );
  console.log(`${"".padEnd(34)}${"in-thread".padStart(12)}${"pool".padStart(12)}${"pool/base".padStart(11)}`);
  for (const row of rows) console.log(row);
  process.exit(0);
}
