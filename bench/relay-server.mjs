// Child process for bench/relay.mjs: either the real relay (app + Socket.IO on one server, as the
// local stack runs it) or a bare Socket.IO server that only forwards payloads (the floor).
// Talks to the parent over IPC. Run with --expose-gc so memory readings are after a collection.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { Server } from "socket.io";
import lib from "./lib.cjs";

const mode = process.argv[2];
const send = (message) => process.send(message);

async function startRelay() {
  const { initializeApp } = await import("firebase-admin/app");
  const { getFirestore, Timestamp } = await import("firebase-admin/firestore");
  const { createApp, createServices, loadConfig, attachRelay, newId } = lib;
  const projectId = process.env.FIREBASE_PROJECT_ID;
  initializeApp({ projectId });
  const config = loadConfig("test", {
    FIREBASE_PROJECT_ID: projectId,
    JWT_SECRET: "bench-secret-bench-secret-bench-secret-0123",
    LOG_LEVEL: "error",
    SEND_RATE_BURST: "100000",
    ACCESS_TOKEN_TTL_SECONDS: "3600",
    // Thousands of sockets and sends from 127.0.0.1: the per-address and per-user ceilings are not what is measured.
    API_IP_LIMIT: "1000000",
    API_USER_LIMIT: "1000000",
    SOCKET_CONNECT_LIMIT: "1000000",
    SOCKET_AUTH_LIMIT: "1000000",
    SOCKET_EVENT_LIMIT: "1000000",
  });
  const db = getFirestore();
  const deps = { db, config };
  const services = createServices(deps);
  const server = createServer(createApp(deps, services));
  const relay = await attachRelay(server, services);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));

  /** Users and sessions written straight into the layout (registration's bcrypt is not what is measured). */
  async function mintUsers(count) {
    const users = [];
    for (let start = 0; start < count; start += 200) {
      const batch = db.batch();
      const chunk = [];
      for (let i = start; i < Math.min(count, start + 200); i++) {
        const id = newId("user");
        const username = `bench_${randomBytes(6).toString("hex")}`;
        batch.create(db.collection("users").doc(id), {
          email: `${username}@example.com`,
          username,
          usernameLower: username,
          passwordHash: "not-a-login-account",
          publicKey: "bench",
          createdAt: Timestamp.now(),
          lastLogin: null,
          lastSeen: null,
        });
        chunk.push(id);
      }
      await batch.commit();
      for (const id of chunk) {
        const { sessionId } = await services.sessions.create(id);
        users.push({ id, token: services.tokens.issue({ userId: id, sessionId }).token });
      }
    }
    return users;
  }

  process.on("message", async (message) => {
    if (message.cmd === "mintUsers") send({ reply: message.id, users: await mintUsers(message.count) });
    if (message.cmd === "memory") {
      global.gc?.();
      await new Promise((resolve) => setTimeout(resolve, 200));
      global.gc?.();
      send({ reply: message.id, memory: process.memoryUsage(), stats: relay.stats() });
    }
  });
  send({ ready: true, port: server.address().port });
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

(mode === "bare" ? startBare() : startRelay()).catch((error) => {
  console.error(error);
  process.exit(1);
});
