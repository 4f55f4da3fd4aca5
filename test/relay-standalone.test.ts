import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../functions/src/local/firestore-emulator";
import { registerUser, startTestApp, type TestApp } from "./support/app";
import { sendMessage } from "./support/messages";
import { nextEvent } from "./support/sockets";

/**
 * The relay as Cloud Run runs it (functions/lib/relay/standalone.js, built by `npm test`), in its own
 * process, sharing Firestore with an API instance: a message sent over REST reaches a socket held by
 * the other process, and SIGTERM hands the socket off so the client reconnects by itself.
 */
const STANDALONE = resolve(__dirname, "..", "functions", "lib", "relay", "standalone.js");
let api: TestApp;

beforeAll(async () => {
  api = await startTestApp();
});
afterAll(async () => {
  await api.close();
});

describe("the standalone relay (Cloud Run)", () => {
  it("when a message is sent through the API, then the relay process delivers it; on SIGTERM clients are handed off", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [STANDALONE], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        FIREBASE_PROJECT_ID: api.projectId,
        JWT_SECRET: api.config.jwt.secret,
        METADATA_SERVER_DETECTION: "none",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (output += chunk));
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`relay did not start:\n${output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const [alice, bob] = await Promise.all([registerUser(api), registerUser(api)]);
      const socket = io(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { token: bob.token }, reconnection: false });
      try {
        expect(await nextEvent(socket, "authenticated")).toEqual({ userId: bob.id });
        const incoming = nextEvent(socket, "message_received");
        const sent = await sendMessage(api, alice, bob);
        expect(await incoming).toEqual(sent.body.message);

        const dropped = nextEvent<string>(socket, "disconnect");
        child.kill("SIGTERM");
        // "transport close" (not "io server disconnect") is the reason socket.io-client reconnects on.
        expect(await dropped).toBe("transport close");
        expect(await exited).toBe(0);
      } finally {
        socket.disconnect();
      }
    } finally {
      child.kill("SIGKILL");
    }
  });
});
