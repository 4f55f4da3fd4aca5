// Benchmark: the realtime relay against a bare Socket.IO server that only forwards (the floor).
//
// 1. Latency with USERS connected users in pairs exchanging messages: REST send → message_received,
//    and socket send_message → message_received, next to the bare server forwarding the same payloads.
// 2. Capacity: authenticated sockets held by one relay process (one user each), in steps up to
//    MAX_SOCKETS, with memory per socket above the idle process.
//
//   npm run bench:relay                 (builds first)
//   USERS=200 ROUNDS=3 PACE_MS=5000 MAX_SOCKETS=5000 STEP=1000 npm run bench:relay
//
// With one Firestore listener per connected user the emulator commits slowly (it serializes
// transactions and evaluates every listener on each commit), so senders keep a human pace rather than
// firing back to back; PACE_MS=0 shows the emulator's saturation instead.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import lib from "./lib.cjs";

const USERS = Number(process.env.USERS ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const MAX_SOCKETS = Number(process.env.MAX_SOCKETS ?? 5000);
const STEP = Number(process.env.STEP ?? 1000);
const PACE_MS = Number(process.env.PACE_MS ?? 5000);
const SERVER = fileURLToPath(new URL("./relay-server.mjs", import.meta.url));

const { percentile, messagePayload } = lib;
const stats = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const children = new Set();
process.on("exit", () => children.forEach((child) => child.kill("SIGKILL")));

/** A child server process with a tiny request/reply protocol over IPC. */
async function startChild(mode, env) {
  const child = fork(SERVER, [mode], { env: { ...process.env, ...env }, execArgv: ["--expose-gc"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.add(child);
  const pending = new Map();
  let counter = 0;
  const ready = new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${mode} server exited with ${code}`)));
    child.on("message", (message) => {
      if (message.ready) resolve(message.port);
      else if (message.reply !== undefined) pending.get(message.reply)?.(message);
    });
  });
  const port = await ready;
  const ask = (message) =>
    new Promise((resolve) => {
      const id = ++counter;
      pending.set(id, resolve);
      child.send({ ...message, id });
    });
  return { child, url: `http://127.0.0.1:${port}`, ask, stop: () => child.kill("SIGKILL") };
}

async function connectAll(url, users, authOf, concurrency = 100) {
  const sockets = [];
  for (let i = 0; i < users.length; i += concurrency) {
    const batch = users.slice(i, i + concurrency).map(
      (user) =>
        new Promise((resolve, reject) => {
          const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: authOf(user) });
          const timer = setTimeout(() => reject(new Error("authentication timed out")), 60_000);
          socket.once("authenticated", () => {
            clearTimeout(timer);
            resolve(socket);
          });
          socket.once("auth_error", (error) => reject(new Error(error.message)));
          socket.once("connect_error", (error) => reject(error));
        }),
    );
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

/** Pairs (i, i + n/2) exchange ROUNDS messages each way; latency = send start → receiver's event. */
async function exchange(users, sockets, sendOne) {
  const started = new Map();
  const latencies = [];
  const failures = [];
  sockets.forEach((socket) =>
    socket.on("message_received", (message, ack) => {
      const t0 = started.get(message.nonce);
      if (t0 !== undefined) latencies.push(performance.now() - t0);
      ack?.();
    }),
  );
  const half = users.length / 2;
  const expected = half * 2 * ROUNDS;
  await Promise.all(
    users.map(async (user, index) => {
      const partner = users[index < half ? index + half : index - half];
      for (let round = 0; round < ROUNDS; round++) {
        // Users type at human pace: a random pause before each message (PACE_MS on average).
        await sleep(Math.random() * 2 * PACE_MS);
        const body = messagePayload(partner.id);
        started.set(body.nonce, performance.now());
        try {
          await sendOne(user, sockets[index], body);
        } catch (error) {
          failures.push(String(error.message ?? error));
        }
      }
    }),
  );
  const deadline = Date.now() + 60_000;
  while (latencies.length < expected && Date.now() < deadline) await sleep(20);
  sockets.forEach((socket) => socket.removeAllListeners("message_received"));
  return { ...stats(latencies), lost: expected - latencies.length - failures.length, failed: failures.length, firstFailure: failures[0] };
}

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await lib.useEmulator("demo-bench");
  const emulatorHost = emulator.hostPort;
  const env = (label) => ({ FIRESTORE_EMULATOR_HOST: emulatorHost, FIREBASE_PROJECT_ID: `demo-bench-${label}-${randomBytes(3).toString("hex")}` });
  const lines = [];
  try {
    // 1. Latency.
    const relay = await startChild("relay", env("latency"));
    const { users } = await relay.ask({ cmd: "mintUsers", count: USERS });
    const sockets = await connectAll(relay.url, users, (user) => ({ token: user.token }));
    // Let connection-time work settle (initial snapshots, presence), then warm both send paths up.
    await sleep(2000);
    const viaRest = async (user, _socket, body) => {
      const response = await fetch(`${relay.url}/api/messages/send`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${user.token}` },
        body: JSON.stringify(body),
      });
      if (response.status !== 201) throw new Error(`send failed: ${response.status}`);
      await response.arrayBuffer();
    };
    const viaSocketSend = (_user, socket, body) => socket.timeout(30_000).emitWithAck("send_message", body);
    await exchange(users, sockets, viaRest);
    await exchange(users, sockets, viaSocketSend);
    const rest = await exchange(users, sockets, viaRest);
    const viaSocket = await exchange(users, sockets, viaSocketSend);
    sockets.forEach((socket) => socket.disconnect());
    relay.stop();

    const bare = await startChild("bare", {});
    const bareSockets = await connectAll(bare.url, users, (user) => ({ userId: user.id }));
    await exchange(users, bareSockets, viaSocketSend);
    const floor = await exchange(users, bareSockets, viaSocketSend);
    bareSockets.forEach((socket) => socket.disconnect());
    bare.stop();

    lines.push(`Latency to message_received, ${USERS} connected users, ${ROUNDS} messages each, one every ~${PACE_MS} ms per user (ms)`);
    lines.push("path                          delivered  refused  lost      p50      p99   p50 vs floor");
    for (const [name, r] of [["REST send -> relay", rest], ["socket send -> relay", viaSocket], ["bare Socket.IO forward", floor]]) {
      lines.push(
        `${name.padEnd(30)}${String(r.n).padStart(9)}${String(r.failed).padStart(9)}${String(r.lost).padStart(6)}${r.p50.toFixed(1).padStart(9)}${r.p99.toFixed(1).padStart(9)}${(r.p50 / floor.p50).toFixed(1).padStart(12)}x` +
          (r.firstFailure ? `   first refusal: ${r.firstFailure}` : ""),
      );
    }

    // 2. Capacity and memory per authenticated socket.
    const capacity = await startChild("relay", env("capacity"));
    const idle = (await capacity.ask({ cmd: "memory" })).memory;
    lines.push("");
    lines.push(`Authenticated sockets held by one relay process (one user each); idle: rss ${(idle.rss / 2 ** 20).toFixed(0)} MiB, heap ${(idle.heapUsed / 2 ** 20).toFixed(0)} MiB`);
    lines.push("sockets  listeners   connect s   rss MiB  heap MiB   KiB/socket (rss)  KiB/socket (heap)");
    const held = [];
    for (let total = STEP; total <= MAX_SOCKETS; total += STEP) {
      const { users: more } = await capacity.ask({ cmd: "mintUsers", count: STEP });
      const t0 = performance.now();
      try {
        held.push(...(await connectAll(capacity.url, more, (user) => ({ token: user.token }))));
      } catch (error) {
        lines.push(`${String(total).padStart(7)}  stopped: ${error.message}`);
        break;
      }
      const seconds = (performance.now() - t0) / 1000;
      await sleep(1000);
      const { memory, stats: relayStats } = await capacity.ask({ cmd: "memory" });
      const perSocket = (bytes) => ((bytes / held.length) / 1024).toFixed(1);
      lines.push(
        `${String(held.length).padStart(7)}${String(relayStats.listeners).padStart(11)}${seconds.toFixed(1).padStart(12)}${(memory.rss / 2 ** 20).toFixed(0).padStart(10)}${(memory.heapUsed / 2 ** 20).toFixed(0).padStart(10)}${perSocket(memory.rss - idle.rss).padStart(19)}${perSocket(memory.heapUsed - idle.heapUsed).padStart(19)}`,
      );
      console.error(lines[lines.length - 1]);
    }
    held.forEach((socket) => socket.disconnect());
    capacity.stop();

    // The floor: the same number of sockets on a bare Socket.IO server (no auth, no Firestore).
    const bareCapacity = await startChild("bare", {});
    const bareIdle = (await bareCapacity.ask({ cmd: "memory" })).memory;
    const bareHeld = await connectAll(bareCapacity.url, held.map((_, i) => ({ id: `user_${i}` })), (user) => ({ userId: user.id }));
    await sleep(1000);
    const bareMemory = (await bareCapacity.ask({ cmd: "memory" })).memory;
    const bareRss = (bareMemory.rss - bareIdle.rss) / bareHeld.length / 1024;
    const bareHeap = (bareMemory.heapUsed - bareIdle.heapUsed) / bareHeld.length / 1024;
    lines.push(`${String(bareHeld.length).padStart(7)}  bare Socket.IO (floor)${bareRss.toFixed(1).padStart(27)}${bareHeap.toFixed(1).padStart(19)}`);
    bareHeld.forEach((socket) => socket.disconnect());
    bareCapacity.stop();
    lines.push("(target: 5,000 sockets at under 50 KiB each above the idle process)");
    console.log("\n" + lines.join("\n") + "\n");
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
