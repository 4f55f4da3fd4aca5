// Benchmark: the realtime relay against the least a relay of its design could do (the floor), both
// on one Firestore emulator, in one run.
//
// 1. Latency, USERS connected users in pairs exchanging messages, each path against its floor:
//    (a) REST send -> the receiver's message_received (and REST send -> 201 on its own),
//    (b) socket send_message -> its ack,
//    (c) socket send_message -> the receiver's message_received.
//    The floor (relay-server.mjs "floor") is bare Socket.IO + Admin SDK: the send transaction of the
//    same shape (6 reads; counter, message, nonce and one feed event written) behind a bare HTTP
//    handler and a bare send_message handler, and ONE listener on its instance's feed that emits
//    message_received to the receiver's room. It does nothing with acknowledgements; the relay marks
//    each acknowledged message delivered and writes the sender's receipt into the feed (ACK=0: bench
//    receivers do not acknowledge, which shows that path's share).
//    Relay and floor run side by side; their phases alternate (ABBA), so background load falls on both.
//    A second relay process with telemetry on (issue 19: metrics and spans recorded as the local stack
//    does, nothing exported) runs the same phases, and the relay's paths are printed with telemetry off
//    and on (target: under 5% apart). TELEMETRY_COMPARE=0 leaves it out.
// 2. Capacity: authenticated sockets held by one relay process (one user each), in steps up to
//    MAX_SOCKETS, with memory per socket above the idle process next to a bare Socket.IO server holding
//    as many, and the Firestore listeners the relay holds at each step (one, whatever the users).
//
//   npm run bench:relay                 (builds first; about 7 minutes on 2 cores)
//   USERS=200 ROUNDS=2 PACE_MS=10000 FEED_ROLL_MS=5000 MAX_SOCKETS=5000 STEP=1000 npm run bench:relay
//   USERS=0 or MAX_SOCKETS=0 leaves that part out.
//
// Load, and why not faster. In each phase every user sends one message after a random pause of 0 to
// 2 x PACE_MS: 200 users at 10 s is 10 sends/s. The per-user listeners that made the old bench crawl
// are gone, but two limits remain on this machine:
// - The emulator answers every change to a listened query by sending the listener its whole result set
//   again (RESET, every document, CURRENT; bench/emulator-listeners.mjs part 2), so each feed event costs
//   in proportion to the events the listener has seen since it opened. With the relay's production roll
//   (a fresh listener every 60 s) that is thousands of documents per event at these rates, and relay and
//   floor alike fell minutes behind (tried: PACE_MS=1500 and 5000). So both roll every FEED_ROLL_MS=5000
//   here, the relay through its own eventFeedRollMs option; production Firestore has no such cost.
// - CPU: a relay message costs about 45 ms of emulator CPU and 25 ms of relay CPU (the CPU table below),
//   so at 20 sends/s (PACE_MS=5000) a relay phase needs more than the two cores and measures queueing
//   rather than latency. 10 sends/s leaves room for the bench client and for noise.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import lib from "./lib.cjs";

const USERS = Number(process.env.USERS ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const MAX_SOCKETS = Number(process.env.MAX_SOCKETS ?? 5000);
const STEP = Number(process.env.STEP ?? 1000);
const PACE_MS = Number(process.env.PACE_MS ?? 10_000);
const FEED_ROLL_MS = Number(process.env.FEED_ROLL_MS ?? 5000);
const ACK = process.env.ACK !== "0";
const TELEMETRY_COMPARE = process.env.TELEMETRY_COMPARE !== "0";
const SERVER = fileURLToPath(new URL("./relay-server.mjs", import.meta.url));

const { percentile, messagePayload, emulatorCpuMs, settleEmulator } = lib;
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

/**
 * One phase: pairs (i, i + n/2) exchange one message each way. Per message: `sent` = send start -> the
 * send's answer (201 or ack), `received` = send start -> the receiver's message_received.
 */
async function exchange(users, sockets, sendOne, { pace = PACE_MS } = {}) {
  const started = new Map();
  const arrived = new Set();
  const received = [];
  const sent = [];
  const answered = [];
  const failures = [];
  sockets.forEach((socket) =>
    socket.on("message_received", (message, ack) => {
      const t0 = started.get(message.nonce);
      if (t0 !== undefined && !arrived.has(message.nonce)) received.push(performance.now() - t0);
      arrived.add(message.nonce);
      if (ACK) ack?.();
    }),
  );
  const half = users.length / 2;
  await Promise.all(
    users.map(async (user, index) => {
      const partner = users[index < half ? index + half : index - half];
      // Users type at human pace: a random pause before the message (`pace` on average).
      await sleep(Math.random() * 2 * pace);
      const body = messagePayload(partner.id);
      const t0 = performance.now();
      started.set(body.nonce, t0);
      try {
        await sendOne(user, sockets[index], body);
        sent.push(performance.now() - t0);
        answered.push(body.nonce);
      } catch (error) {
        failures.push(String(error.message ?? error));
      }
    }),
  );
  // Lost: answered as stored, never heard by the receiver. A send refused (or timed out) may still
  // arrive; it then counts in `received` but not as lost.
  const missing = () => answered.filter((nonce) => !arrived.has(nonce)).length;
  const deadline = Date.now() + 60_000;
  while (missing() > 0 && Date.now() < deadline) await sleep(20);
  sockets.forEach((socket) => socket.removeAllListeners("message_received"));
  return { received, sent, lost: missing(), failures };
}

/** Phases of one path merged: p50/p99 of each measure, losses and refusals, CPU per message sent. */
function summarize(phases) {
  const failures = phases.flatMap((phase) => phase.failures);
  const count = phases.reduce((sum, phase) => sum + phase.sent.length + phase.failures.length, 0);
  const total = (key) => phases.reduce((sum, phase) => sum + phase[key], 0);
  return {
    serverCpuMs: total("serverCpuMs") / count,
    dbCpuMs: total("dbCpuMs") / count,
    listeners: Math.max(...phases.map((phase) => phase.listeners ?? 0)),
    received: stats(phases.flatMap((phase) => phase.received)),
    sent: stats(phases.flatMap((phase) => phase.sent)),
    lost: phases.reduce((sum, phase) => sum + phase.lost, 0),
    failed: failures.length,
    firstFailure: failures[0],
  };
}

const cpuMs = ({ user, system }) => (user + system) / 1000;

/** POST a message; resolves on 201. */
async function postMessage(url, headers, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  if (response.status !== 201) throw new Error(`send failed: ${response.status} ${(await response.text()).slice(0, 120)}`);
  await response.arrayBuffer();
}

/** A socket send; resolves on a successful ack (a refusal is an ack too, and counts as a failure). */
async function socketSend(_user, socket, body) {
  const answer = await socket.timeout(30_000).emitWithAck("send_message", body);
  if (!answer?.success) throw new Error(`send refused: ${JSON.stringify(answer?.error ?? answer).slice(0, 120)}`);
}

const fixed = (value, width) => (value === undefined ? "-" : value.toFixed(1)).padStart(width);
const ratio = (value, floor, target) => {
  if (value === undefined || !floor) return "-".padStart(7);
  const x = value / floor;
  return `${x.toFixed(2)}x${x <= target ? " " : "!"}`.padStart(7);
};

async function latency(env, lines, emulatorHost) {
  const [relay, floor, observed] = await Promise.all([
    startChild("relay", env("latency")),
    startChild("floor", env("floor")),
    TELEMETRY_COMPARE ? startChild("relay", { ...env("telemetry"), BENCH_TELEMETRY: "on" }) : undefined,
  ]);
  const [{ users }, { users: floorUsers }, observedUsers] = await Promise.all([
    relay.ask({ cmd: "mintUsers", count: USERS }),
    floor.ask({ cmd: "mintUsers", count: USERS }),
    observed?.ask({ cmd: "mintUsers", count: USERS }),
  ]);
  const sockets = await connectAll(relay.url, users, (user) => ({ token: user.token }));
  const floorSockets = await connectAll(floor.url, floorUsers, (user) => ({ userId: user.id, sessionId: user.sessionId }));
  const observedSockets = observed ? await connectAll(observed.url, observedUsers.users, (user) => ({ token: user.token })) : [];
  const listenersAfterConnect = (await relay.ask({ cmd: "memory" })).stats.listeners;
  // Let connection-time work settle (presence, announcements, backlog reads).
  await settleEmulator(emulatorHost);

  const relayRest = (user, _socket, body) => postMessage(`${relay.url}/api/messages/send`, { Authorization: `Bearer ${user.token}` }, body);
  const floorRest = (user, _socket, body) => postMessage(`${floor.url}/send`, { "x-user-id": user.id, "x-session-id": user.sessionId }, body);
  const paths = {
    relayRest: [relay, (pace) => exchange(users, sockets, relayRest, { pace })],
    floorRest: [floor, (pace) => exchange(floorUsers, floorSockets, floorRest, { pace })],
    relaySocket: [relay, (pace) => exchange(users, sockets, socketSend, { pace })],
    floorSocket: [floor, (pace) => exchange(floorUsers, floorSockets, socketSend, { pace })],
  };
  if (observed) {
    const observedRest = (user, _socket, body) => postMessage(`${observed.url}/api/messages/send`, { Authorization: `Bearer ${user.token}` }, body);
    paths.observedRest = [observed, (pace) => exchange(observedUsers.users, observedSockets, observedRest, { pace })];
    paths.observedSocket = [observed, (pace) => exchange(observedUsers.users, observedSockets, socketSend, { pace })];
  }
  /** One phase of a path, with the CPU its server process and the emulator used meanwhile. */
  const runPhase = async (name, pace) => {
    const [server, run] = paths[name];
    const before = { db: emulatorCpuMs(emulatorHost), server: cpuMs((await server.ask({ cmd: "stats" })).cpu) };
    const phase = await run(pace);
    // A phase's acknowledgements and receipts are written after its messages arrive: count them here.
    await settleEmulator(emulatorHost);
    const after = await server.ask({ cmd: "stats" });
    phase.listeners = after.stats.listeners;
    phase.serverCpuMs = cpuMs(after.cpu) - before.server;
    phase.dbCpuMs = emulatorCpuMs(emulatorHost) - before.db; // NaN when unknown
    return phase;
  };
  // One quicker phase of each path to warm up (connections, JIT in both Node and the emulator's JVM),
  // then ROUNDS cycles of one phase each, in ABBA order (reversed every other cycle), so neither side is
  // favoured by its place in the run or by a drift in background load.
  const order = observed
    ? ["relayRest", "observedRest", "floorRest", "floorSocket", "observedSocket", "relaySocket"]
    : ["relayRest", "floorRest", "floorSocket", "relaySocket"];
  for (const name of order) await runPhase(name, PACE_MS / 2);
  const measured = Object.fromEntries(order.map((name) => [name, []]));
  for (let cycle = 0; cycle < ROUNDS; cycle++) {
    for (const name of cycle % 2 ? [...order].reverse() : order) {
      const phase = await runPhase(name);
      measured[name].push(phase);
      console.error(`  ${name}: received p50 ${fixed(stats(phase.received).p50, 0)} ms, answered p50 ${fixed(stats(phase.sent).p50, 0)} ms, lost ${phase.lost}, refused ${phase.failures.length}`);
    }
  }
  const r = Object.fromEntries(order.map((name) => [name, summarize(measured[name])]));
  sockets.forEach((socket) => socket.disconnect());
  floorSockets.forEach((socket) => socket.disconnect());
  observedSockets.forEach((socket) => socket.disconnect());
  relay.stop();
  floor.stop();
  observed?.stop();

  // The transport alone: Socket.IO forwarding the payload, no database.
  const bare = await startChild("bare", {});
  const bareSockets = await connectAll(bare.url, users, (user) => ({ userId: user.id }));
  const transport = summarize([await exchange(users, bareSockets, socketSend, { pace: 500 })]);
  bareSockets.forEach((socket) => socket.disconnect());
  bare.stop();

  lines.push(
    `Latency, ${USERS} connected users, ${ROUNDS} messages each per path, one every ~${PACE_MS} ms per user in a phase (ms); feed rolled every ${FEED_ROLL_MS} ms;` +
      ` relay listeners: ${listenersAfterConnect} after connecting, at most ${Math.max(r.relayRest.listeners, r.relaySocket.listeners)} after a phase (2 while rolling)${ACK ? "" : "; receivers do NOT acknowledge (ACK=0)"}`,
  );
  lines.push("floor: bare Socket.IO + Admin SDK, same send transaction, one feed listener per instance; ! = over target (p50 1.5x, p99 2x)");
  lines.push("path                                      n  refused  lost      p50      p99  floor p50  floor p99   p50 x   p99 x");
  const row = (name, result, measure, floorResult) => {
    const m = result[measure];
    const f = floorResult?.[measure];
    lines.push(
      `${name.padEnd(38)}${String(m.n).padStart(5)}${String(result.failed).padStart(9)}${String(result.lost).padStart(6)}${fixed(m.p50, 9)}${fixed(m.p99, 9)}` +
        `${fixed(f?.p50, 11)}${fixed(f?.p99, 11)} ${ratio(m.p50, f?.p50, 1.5)} ${ratio(m.p99, f?.p99, 2)}` +
        (result.firstFailure ? `   first refusal: ${result.firstFailure}` : ""),
    );
  };
  row("(a) REST send -> message_received", r.relayRest, "received", r.floorRest);
  row("    REST send -> 201", r.relayRest, "sent", r.floorRest);
  row("(b) socket send_message -> ack", r.relaySocket, "sent", r.floorSocket);
  row("(c) socket send -> message_received", r.relaySocket, "received", r.floorSocket);
  row("bare Socket.IO forward (no database)", transport, "received");
  for (const [name, path] of [["floor REST", r.floorRest], ["floor socket", r.floorSocket]]) {
    if (path.failed || path.lost) lines.push(`${name}: ${path.failed} refused, ${path.lost} lost; first refusal: ${path.firstFailure}`);
  }
  const ack = r.relaySocket.sent.p50;
  const rest = r.relayRest.sent.p50;
  lines.push(`socket ack p50 ${fixed(ack, 0)} ms vs REST 201 p50 ${fixed(rest, 0)} ms: ${ack <= rest ? "not higher (target met)" : "HIGHER (target missed)"}`);
  lines.push("");
  lines.push("CPU per message sent, over the measured phases (ms)   relay    floor   relay/floor");
  for (const [label, key, relayPath, floorPath] of [
    ["emulator (JVM), REST phases", "dbCpuMs", r.relayRest, r.floorRest],
    ["emulator (JVM), socket phases", "dbCpuMs", r.relaySocket, r.floorSocket],
    ["server process, REST phases", "serverCpuMs", r.relayRest, r.floorRest],
    ["server process, socket phases", "serverCpuMs", r.relaySocket, r.floorSocket],
  ]) {
    lines.push(`${label.padEnd(50)}${fixed(relayPath[key], 9)}${fixed(floorPath[key], 9)}${(relayPath[key] / floorPath[key]).toFixed(2).padStart(13)}x`);
  }
  if (observed) {
    lines.push("");
    lines.push(`Telemetry off and on (two relay processes, phases interleaved ABBA; traces sampled at ${process.env.TRACE_SAMPLE_RATIO ?? "0.1"}); target: within 5%`);
    // Sends are paced (PACE_MS), so throughput is the same by design: the relay process's CPU per message is what telemetry costs.
    lines.push("path                                  off p50  on p50  off p99  on p99   p50 diff   p99 diff   relay CPU ms/msg off    on    diff");
    const pct = (on, off) => `${(((on - off) / off) * 100).toFixed(1)}%`.padStart(11);
    for (const [label, measure, off, on] of [
      ["(a) REST send -> message_received", "received", r.relayRest, r.observedRest],
      ["    REST send -> 201", "sent", r.relayRest, r.observedRest],
      ["(b) socket send_message -> ack", "sent", r.relaySocket, r.observedSocket],
      ["(c) socket send -> message_received", "received", r.relaySocket, r.observedSocket],
    ]) {
      lines.push(
        `${label.padEnd(36)}${fixed(off[measure].p50, 9)}${fixed(on[measure].p50, 8)}${fixed(off[measure].p99, 9)}${fixed(on[measure].p99, 8)}${pct(on[measure].p50, off[measure].p50)}${pct(on[measure].p99, off[measure].p99)}` +
          `${fixed(off.serverCpuMs, 24)}${fixed(on.serverCpuMs, 6)}${pct(on.serverCpuMs, off.serverCpuMs).padStart(8)}`,
      );
    }
  }
}

async function capacity(env, lines) {
  // The relay and a bare Socket.IO server (the floor) take the same sockets, step by step.
  // Users are minted by a process of their own (as registration would be, elsewhere), so the relay's
  // memory holds only what its sockets cost.
  const project = env("capacity");
  const [relay, bare, minter] = await Promise.all([startChild("relay", project), startChild("bare", {}), startChild("minter", project)]);
  const idle = (await relay.ask({ cmd: "memory" })).memory;
  const bareIdle = (await bare.ask({ cmd: "memory" })).memory;
  lines.push(
    `Authenticated sockets held by one relay process (one user each); idle: rss ${(idle.rss / 2 ** 20).toFixed(0)} MiB, heap ${(idle.heapUsed / 2 ** 20).toFixed(0)} MiB` +
      ` (bare Socket.IO idle: rss ${(bareIdle.rss / 2 ** 20).toFixed(0)} MiB)`,
  );
  lines.push("                                               KiB/socket above idle: relay    bare Socket.IO (floor)");
  lines.push("sockets  listeners   connect s   rss MiB  heap MiB        rss       heap        rss       heap");
  const held = [];
  const bareHeld = [];
  let first; // the first step's readings: what each later socket adds is measured from there
  let last;
  for (let total = STEP; total <= MAX_SOCKETS; total += STEP) {
    const { users: more } = await minter.ask({ cmd: "mintUsers", count: STEP });
    const t0 = performance.now();
    try {
      held.push(...(await connectAll(relay.url, more, (user) => ({ token: user.token }))));
    } catch (error) {
      lines.push(`${String(total).padStart(7)}  stopped: ${error.message}`);
      break;
    }
    const seconds = (performance.now() - t0) / 1000;
    bareHeld.push(...(await connectAll(bare.url, more, (user) => ({ userId: user.id }))));
    await sleep(1000);
    const [{ memory, stats: relayStats }, { memory: bareMemory }] = await Promise.all([relay.ask({ cmd: "memory" }), bare.ask({ cmd: "memory" })]);
    const perSocket = (bytes, count) => (bytes / count / 1024).toFixed(1).padStart(11);
    lines.push(
      `${String(held.length).padStart(7)}${String(relayStats.listeners).padStart(11)}${seconds.toFixed(1).padStart(12)}${(memory.rss / 2 ** 20).toFixed(0).padStart(10)}${(memory.heapUsed / 2 ** 20).toFixed(0).padStart(10)}` +
        `${perSocket(memory.rss - idle.rss, held.length)}${perSocket(memory.heapUsed - idle.heapUsed, held.length)}` +
        `${perSocket(bareMemory.rss - bareIdle.rss, bareHeld.length)}${perSocket(bareMemory.heapUsed - bareIdle.heapUsed, bareHeld.length)}`,
    );
    console.error(lines[lines.length - 1]);
    last = { sockets: held.length, rss: memory.rss, bareSockets: bareHeld.length, bareRss: bareMemory.rss };
    first ??= last;
  }
  if (first && last && last.sockets > first.sockets) {
    // Above idle includes what the process pays once (the young generation growing to its working size,
    // compiled code, the Firestore client's buffers); the marginal cost is what one more socket holds.
    const marginal = (to, from, count) => ((to - from) / count / 1024).toFixed(1);
    lines.push(
      `marginal rss per socket from ${first.sockets} to ${last.sockets} sockets: relay ${marginal(last.rss, first.rss, last.sockets - first.sockets)} KiB,` +
        ` bare Socket.IO ${marginal(last.bareRss, first.bareRss, last.bareSockets - first.bareSockets)} KiB`,
    );
  }
  held.forEach((socket) => socket.disconnect());
  bareHeld.forEach((socket) => socket.disconnect());
  relay.stop();
  bare.stop();
  minter.stop();
  lines.push("(target: 5,000 sockets at under 50 KiB each above the idle process; listeners constant at 1)");
}

async function main() {
  process.env.METADATA_SERVER_DETECTION ??= "none";
  const emulator = await lib.useEmulator("demo-bench");
  // Capacity sends no messages, so its relay keeps the production roll.
  const env = (label) => ({
    FIRESTORE_EMULATOR_HOST: emulator.hostPort,
    FIREBASE_PROJECT_ID: `demo-bench-${label}-${randomBytes(3).toString("hex")}`,
    ...(label === "capacity" ? {} : { FEED_ROLL_MS: String(FEED_ROLL_MS) }),
  });
  const lines = [];
  try {
    // USERS=0 or MAX_SOCKETS=0 leaves that part out.
    if (USERS > 0) await latency(env, lines, emulator.hostPort);
    if (USERS > 0 && MAX_SOCKETS > 0) lines.push("");
    if (MAX_SOCKETS > 0) await capacity(env, lines);
    console.log("\n" + lines.join("\n") + "\n");
  } finally {
    children.forEach((child) => child.kill("SIGKILL"));
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
