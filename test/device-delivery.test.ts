import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { initiate, person, respond } from "./support/key-exchange";
import { messageBody, sendMessage } from "./support/messages";
import { closeAllSockets, collect, connect, connectAs, connectReceiving, emitWithAck, nextEvent, waitFor } from "./support/sockets";

/**
 * Per-device delivery (CONTRACT.md "Devices"): each of a receiver's devices gets each message once and
 * acknowledges for itself. Two relay instances share one project, and a user's devices sit on different
 * instances, so every story also crosses instances.
 */
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  a = await startTestApp({}, { relay: {} });
  b = await startTestApp({}, { projectId: a.projectId, relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await b.close();
  await a.close();
});

/** Signs the user in on one more device; its access token. */
async function newDevice(user: RegisteredUser, deviceName: string): Promise<string> {
  const response = await a.request("POST", "/api/auth/login", { body: { email: user.email, password: user.password, deviceName } });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.token;
}

/** Sends `count` messages one after another; their ids in order. */
async function sendMany(from: RegisteredUser, to: RegisteredUser, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await sendMessage(a, from, to);
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    ids.push(response.body.messageId);
  }
  return ids;
}

const settle = (ms = 600) => new Promise((resolve) => setTimeout(resolve, ms));
const idsOf = (messages: Array<{ id: string }>) => messages.map((message) => message.id);

/** Connects, collecting `event` from the first packet on (what is owed may follow `authenticated` at once). */
async function connectCollecting(app: TestApp, token: string, event: string): Promise<any[]> {
  const socket = connect(app, { token });
  const seen = collect(socket, event);
  await nextEvent(socket, "authenticated");
  return seen;
}

/** A device's socket that keeps the ack callbacks of what it received, to acknowledge later. */
async function holdingDevice(app: TestApp, token: string) {
  const socket = await connectAs(app, token);
  const acks = new Map<string, () => void>();
  const received: any[] = [];
  socket.on("message_received", (message: any, ack: () => void) => {
    received.push(message);
    acks.set(message.id, ack);
  });
  return { socket, received, acks };
}

describe("messages, per device", () => {
  it("when a receiver has two devices, then each gets every message exactly once, and one device's acknowledgements do not stop the other's", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const phone = await connectReceiving(a, bob.token);
    const laptop = await connectReceiving(b, laptopToken, { acknowledge: false });

    const ids = await sendMany(alice, bob, 5);
    await waitFor(() => phone.received.length === 5 && laptop.received.length === 5, 10_000, "both devices");
    await settle();
    expect(idsOf(phone.received)).toEqual(ids);
    expect(idsOf(laptop.received)).toEqual(ids);

    // The phone acknowledged all five; the laptop none: its backlog still holds them, the phone's does not.
    laptop.socket.disconnect();
    phone.socket.disconnect();
    const laptopAgain = await connectReceiving(a, laptopToken);
    const phoneAgain = await connectReceiving(b, bob.token);
    await waitFor(() => laptopAgain.received.length === 5, 10_000, "the laptop's backlog");
    await settle();
    expect(idsOf(laptopAgain.received)).toEqual(ids);
    expect(phoneAgain.received).toEqual([]);
  });

  it("when a device is offline during a burst of 30, then on reconnection it gets exactly its backlog, in order, nothing twice, while the other got them live", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const phone = await connectReceiving(a, bob.token);

    const ids: string[] = [];
    // In bursts of 5 concurrent sends: the order is the server's (timestamp, then sequenceNumber).
    for (let burst = 0; burst < 6; burst++) {
      const responses = await Promise.all(Array.from({ length: 5 }, () => sendMessage(a, alice, bob)));
      for (const response of responses) expect(response.status, JSON.stringify(response.body)).toBe(201);
      ids.push(...responses.sort((x, y) => x.body.sequenceNumber - y.body.sequenceNumber).map((response) => response.body.messageId));
    }
    await waitFor(() => phone.received.length === 30, 15_000, "the phone, live");

    const laptop = await connectReceiving(b, laptopToken);
    await waitFor(() => laptop.received.length >= 30, 15_000, "the laptop's backlog");
    await settle();
    expect(idsOf(laptop.received)).toEqual(ids);
    const sequence = laptop.received.map((message) => message.sequenceNumber);
    expect(sequence).toEqual([...sequence].sort((x, y) => x - y));
    expect(new Set(idsOf(phone.received)).size).toBe(30);
    // Nothing of the per-device bookkeeping reaches a client.
    expect(Object.keys(laptop.received[0]!)).not.toContain("pendingDevices");

    laptop.socket.disconnect();
    const laptopAgain = await connectReceiving(a, laptopToken);
    await settle();
    expect(laptopAgain.received).toEqual([]);
  });

  it("when the first device acknowledges, then the sender gets message_delivered once; the second device's acknowledgement sends none", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const aliceSocket = await connectAs(a, alice.token);
    const receipts = collect(aliceSocket, "message_delivered");
    const phone = await holdingDevice(a, bob.token);
    const laptop = await holdingDevice(b, laptopToken);

    const [id] = await sendMany(alice, bob, 1);
    await waitFor(() => phone.acks.has(id!) && laptop.acks.has(id!), 10_000, "both devices");
    await settle(300);
    expect(receipts).toEqual([]);

    laptop.acks.get(id!)!();
    await waitFor(() => receipts.length === 1, 10_000, "the receipt");
    expect(receipts[0]).toMatchObject({ messageId: id, receiverId: bob.id, deliveredAt: expect.any(String) });

    const ack = await emitWithAck(phone.socket, "message_ack", { messageId: id });
    expect(ack).toEqual({ success: true });
    await settle();
    expect(receipts).toHaveLength(1);
    const stored = (await a.db.collection("messages").doc(id!).get()).data()!;
    expect(stored.pendingDevices).toEqual([]);
    expect(stored.deliveredAt).not.toBeNull();
  });

  it("when two devices acknowledge the same messages at the same moment, then the sender gets exactly one message_delivered for each, and neither device is owed them again", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const aliceSocket = await connectAs(b, alice.token);
    const receipts = collect(aliceSocket, "message_delivered");
    const phone = await holdingDevice(a, bob.token);
    const laptop = await holdingDevice(b, laptopToken);

    const ids = await sendMany(alice, bob, 10);
    await waitFor(() => ids.every((id) => phone.acks.has(id) && laptop.acks.has(id)), 10_000, "both devices");
    for (const id of ids) {
      phone.acks.get(id)!();
      laptop.acks.get(id)!();
    }
    await waitFor(() => receipts.length >= 10, 10_000, "the receipts");
    await settle();
    expect(receipts.map((receipt) => receipt.messageId).sort()).toEqual([...ids].sort());
    await waitFor(async () => {
      const stored = await Promise.all(ids.map((id) => a.db.collection("messages").doc(id).get()));
      return stored.every((doc) => doc.get("pendingDevices").length === 0);
    }, 10_000, "every device off every message");
  });

  it("when a device acknowledges a message it was never owed (stored before it existed), then nothing changes and no receipt is sent", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const aliceSocket = await connectAs(a, alice.token);
    const receipts = collect(aliceSocket, "message_delivered");
    const [id] = await sendMany(alice, bob, 1);
    const laptop = await connectAs(b, await newDevice(bob, "laptop"));
    expect(await emitWithAck(laptop, "message_ack", { messageId: id })).toEqual({ success: true });
    await settle();
    expect(receipts).toEqual([]);
    const stored = (await a.db.collection("messages").doc(id!).get()).data()!;
    expect(stored.deliveredAt).toBeNull();
    expect(stored.pendingDevices).toHaveLength(1);
  });

  it("when one device acknowledged a disappearing message, then at its expiry the sender gets no message_expired, and the other device never gets it", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const aliceSocket = await connectAs(a, alice.token);
    const expired = collect(aliceSocket, "message_expired");
    const receipts = collect(aliceSocket, "message_delivered");
    const phone = await connectReceiving(a, bob.token);
    const sent = await sendMessage(a, alice, bob, { expiresInSeconds: 5 });
    expect(sent.status).toBe(201);
    await waitFor(() => receipts.length === 1, 10_000, "the phone's receipt");

    a.clock.advance(5000);
    b.clock.advance(5000);
    await a.services.messageExpiry.run();
    const laptop = await connectReceiving(b, laptopToken);
    await settle();
    expect(idsOf(phone.received)).toEqual([sent.body.messageId]);
    expect(laptop.received).toEqual([]);
    expect(expired).toEqual([]);
  });

  it("when a device is added after a message was stored, then it does not get it as message_received, but reads it in history", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const [id] = await sendMany(alice, bob, 1);
    const laptopToken = await newDevice(bob, "laptop");
    const laptop = await connectReceiving(b, laptopToken);
    const [later] = await sendMany(alice, bob, 1);
    await waitFor(() => laptop.received.length === 1, 10_000, "the later message");
    await settle();
    expect(idsOf(laptop.received)).toEqual([later]);

    const history = await a.request("GET", `/api/messages/${alice.id}`, { token: laptopToken });
    expect(history.status).toBe(200);
    expect(idsOf(history.body.messages)).toEqual([id, later]);
  });

  it("when the receiver had no device when a message was stored (every session logged out), then the next device to sign in gets it, and its acknowledgement is the receipt", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    expect((await a.request("POST", "/api/auth/logout", { token: bob.token })).status).toBe(200);
    const aliceSocket = await connectAs(a, alice.token);
    const receipts = collect(aliceSocket, "message_delivered");
    const ids = await sendMany(alice, bob, 2);

    const phoneToken = await newDevice(bob, "phone");
    const phone = await connectReceiving(b, phoneToken);
    await waitFor(() => phone.received.length === 2 && receipts.length === 2, 10_000, "the backlog and its receipts");
    expect(idsOf(phone.received)).toEqual(ids);

    // Claimed by the device that acknowledged it: a device signing in after that does not get it again.
    const tabletToken = await newDevice(bob, "tablet");
    const tablet = await connectReceiving(a, tabletToken);
    await settle();
    expect(tablet.received).toEqual([]);
  });
});

describe("message_sent, to the sender's other devices", () => {
  it("when a device sends (over the socket or REST), then the sender's other connected device gets message_sent with the full record, and the sending device gets none", async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    const otherToken = await newDevice(alice, "laptop");
    const sending = await connectAs(a, alice.token);
    const other = await connectAs(b, otherToken);
    const onOther = collect(other, "message_sent");
    const onSending = collect(sending, "message_sent");

    const viaSocket = await emitWithAck(sending, "send_message", messageBody(bob.id));
    expect(viaSocket.success).toBe(true);
    const viaRest = await sendMessage(a, alice, bob);
    expect(viaRest.status).toBe(201);
    await waitFor(() => onOther.length === 2, 10_000, "message_sent");
    expect(onOther).toEqual([{ message: viaSocket.message }, { message: viaRest.body.message }]);

    // A retry stores nothing and tells nobody.
    const body = messageBody(bob.id);
    await emitWithAck(sending, "send_message", body);
    const retry = await emitWithAck(sending, "send_message", body);
    expect(retry.duplicate).toBe(true);
    await settle();
    expect(onOther).toHaveLength(3);
    expect(onSending).toEqual([]);
  });
});

describe("key-exchange notices, per device", () => {
  it("when the target has two devices, then each gets key_exchange_request once, and each acknowledges for itself", async () => {
    const [alice, bob] = [await person(a), await person(a)];
    const laptopToken = await newDevice(bob, "laptop");
    const phone = await connectAs(a, bob.token);
    const laptop = await connectAs(b, laptopToken);
    const phoneRequests: Array<[any, () => void]> = [];
    const laptopRequests: Array<[any, () => void]> = [];
    phone.on("key_exchange_request", (payload: any, ack: () => void) => phoneRequests.push([payload, ack]));
    laptop.on("key_exchange_request", (payload: any, ack: () => void) => laptopRequests.push([payload, ack]));

    const { response } = await initiate(a, alice, bob);
    expect(response.status).toBe(201);
    await waitFor(() => phoneRequests.length === 1 && laptopRequests.length === 1, 10_000, "both devices");
    phoneRequests[0]![1]();
    const exchangeRef = a.db.collection("keyExchanges").doc(response.body.exchangeId);
    await waitFor(async () => (await exchangeRef.get()).get("requestDeliveredAt") !== null, 10_000, "the phone's acknowledgement");
    await settle(300);

    phone.disconnect();
    laptop.disconnect();
    const phoneSeen = await connectCollecting(b, bob.token, "key_exchange_request");
    const laptopSeen = await connectCollecting(a, laptopToken, "key_exchange_request");
    await waitFor(() => laptopSeen.length === 1, 10_000, "the laptop's owed request");
    await settle();
    expect(laptopSeen[0]).toMatchObject({ exchangeId: response.body.exchangeId });
    expect(phoneSeen).toEqual([]);
    expect(phoneRequests).toHaveLength(1);
  });

  it("when the initiator has two devices, then each gets key_exchange_response once", async () => {
    const [alice, bob] = [await person(a), await person(a)];
    const secondToken = await newDevice(alice, "laptop");
    const { response } = await initiate(a, alice, bob);
    const first = await connectCollecting(a, alice.token, "key_exchange_response");
    const second = await connectCollecting(b, secondToken, "key_exchange_response");
    const answered = await respond(a, bob, response.body.exchangeId);
    expect(answered.response.status).toBe(200);
    await waitFor(() => first.length === 1 && second.length === 1, 10_000, "both devices");
    await settle();
    expect(first).toEqual(second);
    expect(first).toHaveLength(1);
  });
});
