import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerUser, startTestApp, type TestApp } from "./support/app";
import { sendMessage } from "./support/messages";
import { startRelayProcess } from "./support/relay-process";
import { nextEvent } from "./support/sockets";

/**
 * The relay as Cloud Run runs it (functions/lib/relay/standalone.js, built by `npm test`), in its own
 * process, sharing Firestore with an API instance: a message sent over REST reaches a socket held by
 * the other process, and SIGTERM hands the socket off so the client reconnects by itself.
 */
let api: TestApp;

beforeAll(async () => {
  api = await startTestApp();
});
afterAll(async () => {
  await api.close();
});

describe("the standalone relay (Cloud Run)", () => {
  it("when a message is sent through the API, then the relay process delivers it; on SIGTERM clients are handed off", async () => {
    const relay = await startRelayProcess(api);
    const { child, exited } = relay;
    try {
      const [alice, bob] = await Promise.all([registerUser(api), registerUser(api)]);
      const socket = io(relay.baseUrl, { transports: ["websocket"], auth: { token: bob.token }, reconnection: false });
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
