import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ageDatabase } from "./support/aging";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { messageBody, sendMessage } from "./support/messages";
import { closeAllSockets, connectAs, connectReceiving, emitWithAck, waitFor } from "./support/sockets";
import type { Socket } from "socket.io-client";

/**
 * Realtime delivery on a database that has seen a day of local use (test/support/aging.ts: 1,500 users,
 * 6,000 messages, 12,000 relay events, every nonce). The previous relay design, with a listener per
 * user and one shared event collection, left online receivers without their messages for minutes on
 * such a database. Here every message to an online receiver arrives within DELIVERY_BOUND_MS, whatever
 * the order in which sender and receiver connected.
 */
const DELIVERY_BOUND_MS = 3000;
const TRIES_PER_ORDER = 3;

let a: TestApp;
let b: TestApp;
const latencies: number[] = [];

beforeAll(async () => {
  a = await startTestApp({}, { relay: {} });
  b = await startTestApp({}, { projectId: a.projectId, relay: {} });
  await ageDatabase(a.db);
}, 120_000);
afterEach(() => closeAllSockets());
afterAll(async () => {
  latencies.sort((x, y) => x - y);
  console.log(`aged database: ${latencies.length} deliveries, p50 ${latencies[Math.floor(latencies.length / 2)]} ms, max ${latencies[latencies.length - 1]} ms`);
  await b.close();
  await a.close();
});

/** Sends one message right away and resolves with the time until the receiver's socket had it. */
async function timeDelivery(send: () => Promise<string>, receiver: Socket): Promise<number> {
  const started = Date.now();
  const arrivals = new Map<string, number>();
  const onMessage = (message: { id: string }, ack?: () => void) => {
    arrivals.set(message.id, Date.now());
    ack?.();
  };
  receiver.on("message_received", onMessage);
  try {
    const messageId = await send();
    while (!arrivals.has(messageId) && Date.now() - started < DELIVERY_BOUND_MS + 2000) await new Promise((r) => setTimeout(r, 10));
    const latency = (arrivals.get(messageId) ?? Number.POSITIVE_INFINITY) - started;
    latencies.push(latency);
    return latency;
  } finally {
    receiver.off("message_received", onMessage);
  }
}

const viaRest = (sender: RegisteredUser, receiver: RegisteredUser) => async () => (await sendMessage(a, sender, receiver)).body.messageId as string;
const viaSocket = (socket: Socket, receiver: RegisteredUser) => async () => {
  const answer = await emitWithAck(socket, "send_message", messageBody(receiver.id));
  if (!answer.success) throw new Error(JSON.stringify(answer));
  return answer.message.id as string;
};

describe("on a database that has seen a day of use", () => {
  it.each([
    ["the receiver, then the sender", "receiver-first"],
    ["the sender, then the receiver", "sender-first"],
    ["both at the same moment", "together"],
  ] as const)("when %s connect (on different instances), then a message sent at once over REST or the socket arrives within the bound", async (_label, order) => {
    for (let attempt = 0; attempt < TRIES_PER_ORDER; attempt++) {
      const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
      let aliceSocket: Socket;
      let bobSocket: Socket;
      if (order === "receiver-first") {
        bobSocket = await connectAs(b, bob.token);
        aliceSocket = await connectAs(a, alice.token);
      } else if (order === "sender-first") {
        aliceSocket = await connectAs(a, alice.token);
        bobSocket = await connectAs(b, bob.token);
      } else {
        [aliceSocket, bobSocket] = await Promise.all([connectAs(a, alice.token), connectAs(b, bob.token)]);
      }
      expect(await timeDelivery(viaRest(alice, bob), bobSocket)).toBeLessThan(DELIVERY_BOUND_MS);
      expect(await timeDelivery(viaSocket(aliceSocket, bob), bobSocket)).toBeLessThan(DELIVERY_BOUND_MS);
      aliceSocket.disconnect();
      bobSocket.disconnect();
    }
  });

  it("when only the receiver is connected, then a REST send reaches it within the bound, and a reconnecting receiver gets what it missed", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const bobSocket = await connectAs(a, bob.token);
    expect(await timeDelivery(viaRest(alice, bob), bobSocket)).toBeLessThan(DELIVERY_BOUND_MS);
    bobSocket.disconnect();
    const missed = (await sendMessage(a, alice, bob)).body.message;
    const started = Date.now();
    const again = await connectReceiving(b, bob.token);
    await waitFor(() => again.received.length > 0, DELIVERY_BOUND_MS, "the missed message");
    expect(Date.now() - started).toBeLessThan(DELIVERY_BOUND_MS);
    expect(again.received).toEqual([missed]);
  });
});
