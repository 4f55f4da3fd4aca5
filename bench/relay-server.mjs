// Child process for bench/relay.mjs, in one of three modes:
//   relay  the real relay (app + Socket.IO on one server, as the local stack runs it)
//   floor  the least a relay of this design could do: bare Socket.IO and Admin SDK, the send transaction
//          of the same shape, and one listener on the instance's feed (the latency floor)
//   bare   a Socket.IO server that only forwards payloads (the memory floor, and the transport's share)
//   minter the relay's services without a server: mints users for the capacity part, so that the
//          writes minting costs are not counted in the measured relay's memory
// Talks to the parent over IPC. Run with --expose-gc so memory readings are after a collection.
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { Server } from "socket.io";
import lib from "./lib.cjs";

const mode = process.argv[2];
const send = (message) => process.send(message);
/** How often the instance's feed listener is replaced (relay/event-feed.ts); the same for relay and floor. */
const FEED_ROLL_MS = Number(process.env.FEED_ROLL_MS ?? 60_000);

/** The relay's configuration and services, as the relay mode builds them (minter shares them). */
async function relayServices() {
  const { initializeApp } = await import("firebase-admin/app");
  const { getFirestore } = await import("firebase-admin/firestore");
  const { createApp, createServices, createTelemetry, loadConfig, attachRelay } = lib;
  const projectId = process.env.FIREBASE_PROJECT_ID;
  initializeApp({ projectId });
  const config = loadConfig("test", {
    FIREBASE_PROJECT_ID: projectId,
    JWT_SECRET: "bench-secret-bench-secret-bench-secret-0123",
    LOG_LEVEL: "error",
    SEND_RATE_BURST: "100000",
    ACCESS_TOKEN_TTL_SECONDS: "3600",
    // Thousands of sockets and sends from 127.0.0.1: the per-address and per-user ceilings are not what is measured.
    SOCKETS_PER_ADDRESS: "1000000",
    API_IP_LIMIT: "1000000",
    API_USER_LIMIT: "1000000",
    SOCKET_CONNECT_LIMIT: "1000000",
    SOCKET_AUTH_LIMIT: "1000000",
    SOCKET_EVENT_LIMIT: "1000000",
    // Metrics and spans recorded as the local stack does (nothing exported) when the bench compares
    // telemetry on and off (BENCH_TELEMETRY=on); traces sampled at production's default.
    TELEMETRY: process.env.BENCH_TELEMETRY === "on" ? "on" : "off",
    TRACE_SAMPLE_RATIO: process.env.TRACE_SAMPLE_RATIO ?? "0.1",
  });
  const db = getFirestore();
  const deps = { db, config, telemetry: createTelemetry(config, { service: "messenger-relay", exportAs: "local" }) };
  return { db, deps, services: createServices(deps), createApp, attachRelay };
}

async function startRelay() {
  const { db, deps, services, createApp, attachRelay } = await relayServices();
  const mintUsers = (count) => mintUsersWith(db, services, count);
  const server = createServer(createApp(deps, services));
  const relay = await attachRelay(server, services, { eventFeedRollMs: FEED_ROLL_MS });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));

  process.on("message", async (message) => {
    if (message.cmd === "mintUsers") send({ reply: message.id, users: await mintUsers(message.count) });
    if (message.cmd === "stats") send({ reply: message.id, stats: relay.stats(), cpu: process.cpuUsage() });
    if (message.cmd === "memory") {
      global.gc?.();
      await new Promise((resolve) => setTimeout(resolve, 200));
      global.gc?.();
      send({ reply: message.id, memory: process.memoryUsage(), stats: relay.stats() });
    }
  });
  send({ ready: true, port: server.address().port });
}

async function startMinter() {
  const { db, services } = await relayServices();
  process.on("message", async (message) => {
    if (message.cmd === "mintUsers") send({ reply: message.id, users: await mintUsersWith(db, services, message.count) });
  });
  send({ ready: true, port: 0 });
}

/** Users and sessions written straight into the layout (registration's bcrypt is not what is measured). */
async function mintUsersWith(db, services, count) {
  const { newId, storedUserOf } = lib;
  const users = [];
  for (let start = 0; start < count; start += 200) {
    const batch = db.batch();
    const chunk = [];
    for (let i = start; i < Math.min(count, start + 200); i++) {
      const id = newId("user");
      const username = `bench_${randomBytes(6).toString("hex")}`;
      const user = { email: `${username}@example.com`, username, passwordHash: "not-a-login-account", publicKey: "bench", createdAt: new Date() };
      batch.create(db.collection("users").doc(id), storedUserOf(user));
      chunk.push(id);
    }
    await batch.commit();
    for (const id of chunk) {
      const { sessionId } = await services.sessions.create(id, "bench device");
      users.push({ id, token: services.tokens.issue({ userId: id, sessionId }).token });
    }
  }
  return users;
}

async function startBare() {
  const server = createServer();
  const io = new Server(server);
  io.on("connection", (socket) => {
    socket.join(socket.handshake.auth.userId);
    socket.emit("authenticated", { userId: socket.handshake.auth.userId });
    socket.on("send_message", (payload, ack) => {
      io.to(payload.receiverId).emit("message_received", payload);
      ack?.({ success: true });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.on("message", async (message) => {
    if (message.cmd === "memory") {
      global.gc?.();
      send({ reply: message.id, memory: process.memoryUsage(), stats: { sockets: io.of("/").sockets.size } });
    }
  });
  send({ ready: true, port: server.address().port });
}

/** The same feed listener as relay/event-feed.ts, rolled on the same schedule, minus its resilience. */
const FEED_LOOKBACK_MS = 2000;

async function startFloor() {
  const { initializeApp } = await import("firebase-admin/app");
  const { getFirestore, Timestamp, FieldValue } = await import("firebase-admin/firestore");
  initializeApp({ projectId: process.env.FIREBASE_PROJECT_ID });
  const db = getFirestore();
  const instanceId = `floor_${randomBytes(6).toString("hex")}`;
  const feed = db.collection("relayInstances").doc(instanceId).collection("relayEvents");

  /** What clients are sent: the stored fields less the server's own, as messages/record.ts does. */
  const toRecord = (messageId, { conversationId, deliveredAt, ...fields }) => ({ id: messageId, messageId, ...fields, timestamp: fields.timestamp.toDate().toISOString() });

  /** MessageRepository.append without its checks: the same 6 reads, the same 4 writes, one transaction. */
  async function store(senderId, sessionId, input) {
    const messageId = lib.newId("msg");
    const refs = [
      db.collection("pairCounters").doc(`${senderId}__${input.receiverId}`),
      db.collection("nonces").doc(createHash("sha256").update(`${senderId}\n${input.nonce}`).digest("hex")),
      db.collection("users").doc(input.receiverId),
      db.collection("messages").doc(messageId),
      db.collection("presence").doc(input.receiverId),
      db.collection("sessions").doc(sessionId),
    ];
    return db.runTransaction(async (tx) => {
      const [pair, , , existing, presence] = await tx.getAll(...refs);
      // An attempt the SDK retried after it committed: the message is stored (as the relay checks too).
      if (existing.exists) return toRecord(messageId, existing.data());
      const now = Date.now();
      const sequenceNumber = (pair.data()?.lastSequence ?? 0) + 1;
      const stored = {
        senderId,
        receiverId: input.receiverId,
        conversationId: [senderId, input.receiverId].sort().join("__"),
        encryptedContent: input.encryptedContent,
        iv: input.iv,
        authTag: input.authTag,
        nonce: input.nonce,
        signature: input.signature,
        messageType: input.messageType,
        sequenceNumber,
        timestamp: Timestamp.fromMillis(now),
        clientTimestamp: input.timestamp,
        deliveredAt: null,
      };
      const record = toRecord(messageId, stored);
      tx.set(refs[0], { lastSequence: sequenceNumber, lastTimestampMs: now, tokens: 60, tokensAtMs: now });
      tx.create(refs[3], stored);
      tx.create(refs[1], { senderId, messageId, expiresAt: Timestamp.fromMillis(now + 900_000) });
      for (const instance of Object.keys(presence.data()?.instances ?? {})) {
        tx.create(db.collection("relayInstances").doc(instance).collection("relayEvents").doc(messageId), {
          userId: input.receiverId,
          type: "message_received",
          payload: record,
          createdAt: FieldValue.serverTimestamp(),
          expiresAt: Timestamp.fromMillis(now + 3600_000),
        });
      }
      return record;
    });
  }

  // A bare HTTP hop for the REST floor; Socket.IO answers its own path on the same server.
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      try {
        const record = await store(req.headers["x-user-id"], req.headers["x-session-id"], JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.writeHead(201, { "Content-Type": "application/json" }).end(JSON.stringify({ success: true, messageId: record.id, message: record }));
      } catch (error) {
        res.writeHead(500).end(String(error));
      }
    });
  });
  const io = new Server(server);
  io.on("connection", (socket) => {
    const { userId, sessionId } = socket.handshake.auth;
    socket.join(userId);
    socket.emit("authenticated", { userId });
    socket.on("send_message", async (payload, ack) => {
      try {
        ack?.({ success: true, message: await store(userId, sessionId, payload) });
      } catch (error) {
        ack?.({ success: false, error: { message: String(error) } });
      }
    });
  });

  // One listener for the whole instance, rolled like the relay's so its result set stays as small.
  const seen = new Set();
  let resumeFromMs = Date.now();
  let listeners = 0;
  const listen = (onAnswered) => {
    listeners += 1;
    let answered = false;
    const stop = feed
      .where("createdAt", ">=", Timestamp.fromMillis(resumeFromMs - FEED_LOOKBACK_MS))
      .orderBy("createdAt")
      .onSnapshot((snapshot) => {
        for (const change of snapshot.docChanges()) {
          if (change.type !== "added" || seen.has(change.doc.id)) continue;
          seen.add(change.doc.id);
          const event = change.doc.data();
          resumeFromMs = Math.max(resumeFromMs, event.createdAt.toMillis());
          io.to(event.userId).emit("message_received", event.payload);
        }
        while (seen.size > 5000) seen.delete(seen.values().next().value);
        if (!answered) {
          answered = true;
          onAnswered?.();
        }
      }, (error) => console.error("floor listener failed", error));
    return () => {
      listeners -= 1;
      stop();
    };
  };
  let stopCurrent = listen();
  setInterval(() => {
    const stopPrevious = stopCurrent;
    stopCurrent = listen(stopPrevious);
  }, FEED_ROLL_MS).unref();

  /** Users, sessions and presence on this instance, written straight into the layout. */
  async function mintUsers(count) {
    const users = [];
    for (let start = 0; start < count; start += 150) {
      const batch = db.batch();
      for (let i = start; i < Math.min(count, start + 150); i++) {
        const user = { id: lib.newId("user"), sessionId: randomBytes(16).toString("hex") };
        batch.create(db.collection("users").doc(user.id), { username: user.id, createdAt: Timestamp.now() });
        batch.create(db.collection("sessions").doc(user.sessionId), { userId: user.id, createdAt: Timestamp.now(), revokedAt: null });
        batch.create(db.collection("presence").doc(user.id), { instances: { [instanceId]: true } });
        users.push(user);
      }
      await batch.commit();
    }
    return users;
  }

  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.on("message", async (message) => {
    if (message.cmd === "mintUsers") send({ reply: message.id, users: await mintUsers(message.count) });
    if (message.cmd === "stats") send({ reply: message.id, stats: { sockets: io.of("/").sockets.size, listeners }, cpu: process.cpuUsage() });
  });
  send({ ready: true, port: server.address().port });
}

const modes = { relay: startRelay, floor: startFloor, bare: startBare, minter: startMinter };
modes[mode]().catch((error) => {
  console.error(error);
  process.exit(1);
});
