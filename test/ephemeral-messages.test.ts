import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { expectError } from "./support/expect-error";
import { messageBody } from "./support/messages";
import { closeAllSockets, collect, connect, connectReceiving, emitWithAck, nextEvent, waitFor } from "./support/sockets";

/**
 * Disappearing messages, as clients see them: `expiresInSeconds` on both send paths, the message gone
 * from history, `total` and the backlog from `expiresAt` on, and the sender's `message_expired` when it
 * expired before the receiver acknowledged it.
 *
 * Time moves with the apps' TestClocks, never by sleeping through a TTL. Two relay instances share one
 * project and both sweep (every 200 ms here), so "exactly one notice" is checked with two sweepers
 * racing. The history tests use a third app with no relay, hence no sweep: expired messages stay stored
 * there, and only the read-time filter keeps them out.
 */
let a: TestApp;
let b: TestApp;
let quiet: TestApp;

const SWEEP_MS = 200;

beforeAll(async () => {
  a = await startTestApp({}, { relay: { expirySweepMs: SWEEP_MS } });
  b = await startTestApp({}, { projectId: a.projectId, relay: { expirySweepMs: SWEEP_MS } });
  quiet = await startTestApp();
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await quiet?.close();
  await b?.close();
  await a?.close();
});

/** Moves the clocks of both relay instances (they share the project, so they must agree on the time). */
function advance(ms: number): void {
  a.clock.advance(ms);
  b.clock.advance(ms);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A send through REST on `app`, the client's timestamp taken from the app's (moved) clock. */
function send(app: TestApp, from: RegisteredUser, to: RegisteredUser, overrides: Record<string, unknown> = {}) {
  return app.request("POST", "/api/messages/send", {
    token: from.token,
    body: messageBody(to.id, { timestamp: app.clock.now().toISOString(), ...overrides }),
  });
}

const history = (app: TestApp, user: RegisteredUser, contact: RegisteredUser, query = "") =>
  app.request("GET", `/api/messages/${contact.id}${query}`, { token: user.token });

/** Connects and collects `message_expired`, acknowledging each one unless told not to. */
async function connectSender(app: TestApp, user: RegisteredUser, { acknowledge = true } = {}) {
  const socket = connect(app, { token: user.token });
  const expired: any[] = [];
  socket.on("message_expired", (payload: any, ack?: () => void) => {
    expired.push(payload);
    if (acknowledge) ack?.();
  });
  await nextEvent(socket, "authenticated");
  return { socket, expired };
}

const storedMessage = (app: TestApp, id: string) => app.db.collection("messages").doc(id).get();
const storedNotice = (app: TestApp, id: string) => app.db.collection("messageExpiries").doc(id).get();

describe("sending a disappearing message", () => {
  it("when expiresInSeconds is given, then the record carries expiresAt = timestamp + TTL on REST and on the socket; without it, no expiresAt field", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const sent = await send(a, alice, bob, { expiresInSeconds: 60 });
    expect(sent.status).toBe(201);
    const { message } = sent.body;
    expect(Date.parse(message.expiresAt) - Date.parse(message.timestamp)).toBe(60_000);

    const plain = await send(a, alice, bob);
    expect(plain.status).toBe(201);
    expect("expiresAt" in plain.body.message).toBe(false);

    const { socket } = await connectReceiving(a, alice.token);
    const ack = await emitWithAck(socket, "send_message", messageBody(bob.id, { timestamp: a.clock.now().toISOString(), expiresInSeconds: 5 }));
    expect(ack.success).toBe(true);
    expect(Date.parse(ack.message.expiresAt) - Date.parse(ack.message.timestamp)).toBe(5000);

    const page = await history(a, bob, alice);
    expect(page.body.messages.map((m: any) => m.expiresAt === undefined)).toEqual([false, true, false]);
    expect(page.body.messages[0]).toEqual(message);
  });

  it.each([
    ["below 5", 4],
    ["above 30 days", 2_592_001],
    ["not an integer", 5.5],
    ["a string", "60"],
    ["null", null],
  ])("when expiresInSeconds is %s, then 400 VALIDATION_ERROR naming it, on REST and on the socket, and nothing is stored", async (_label, value) => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    expectError(await send(a, alice, bob, { expiresInSeconds: value }), 400, "VALIDATION_ERROR", "expiresInSeconds");
    const { socket } = await connectReceiving(a, alice.token);
    const ack = await emitWithAck(socket, "send_message", messageBody(bob.id, { expiresInSeconds: value }));
    expect(ack).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR", details: { field: "expiresInSeconds" } } });
    expect((await history(a, alice, bob)).body.total).toBe(0);
  });

  it("when a send is retried, then expiresInSeconds is part of its content: the same answers 200 duplicate, another TTL 409", async () => {
    const [alice, bob] = await Promise.all([registerUser(quiet), registerUser(quiet)]);
    const body = messageBody(bob.id, { timestamp: quiet.clock.now().toISOString(), expiresInSeconds: 30 });
    const first = await quiet.request("POST", "/api/messages/send", { token: alice.token, body });
    expect(first.status).toBe(201);
    const retry = await quiet.request("POST", "/api/messages/send", { token: alice.token, body });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ ...first.body, duplicate: true });
    for (const other of [{ expiresInSeconds: 31 }, { expiresInSeconds: undefined }]) {
      const changed = await quiet.request("POST", "/api/messages/send", { token: alice.token, body: { ...body, ...other } });
      expectError(changed, 409, "REPLAY_DETECTED", "nonce");
    }
    // Once the message has expired, the nonce stays used but the message is not answered again.
    quiet.clock.advance(30_000);
    expectError(await quiet.request("POST", "/api/messages/send", { token: alice.token, body }), 409, "REPLAY_DETECTED", "nonce");
  });
});

describe("expiry", () => {
  it("when a 5 s message reaches a connected receiver, then it is delivered before expiry and absent from history after it; the sender gets no notice", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const sender = await connectSender(a, alice);
    const receiver = await connectReceiving(b, bob.token);
    const sent = await send(a, alice, bob, { expiresInSeconds: 5 });
    expect(sent.status).toBe(201);
    const id = sent.body.messageId;

    await waitFor(() => receiver.received.length === 1, 10_000, "message_received");
    expect(receiver.received[0]).toEqual(sent.body.message);
    await waitFor(async () => (await storedMessage(a, id)).get("deliveredAt") !== null, 10_000, "the acknowledgement");
    expect((await history(a, bob, alice)).body).toMatchObject({ total: 1, messages: [{ id }] });

    advance(5000);
    for (const [user, contact] of [
      [alice, bob],
      [bob, alice],
    ] as const) {
      const page = await history(a, user, contact);
      expect(page.body).toMatchObject({ success: true, messages: [], total: 0, hasMore: false });
    }
    // The sweeps delete it (the emulator has no TTL policy, so locally the sweep does that too), silently.
    await waitFor(async () => !(await storedMessage(a, id)).exists, 10_000, "the deletion");
    await pause(5 * SWEEP_MS);
    expect(sender.expired).toEqual([]);
    expect((await storedNotice(a, id)).exists).toBe(false);
  });

  it("when a message to an offline receiver expires, then its connected sender gets exactly one message_expired, also after reconnecting, and the receiver never gets it", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const sender = await connectSender(a, alice);
    const sent = await send(b, alice, bob, { expiresInSeconds: 5 });
    const id = sent.body.messageId;
    const plain = await send(b, alice, bob);

    advance(5000);
    await waitFor(() => sender.expired.length > 0, 10_000, "message_expired");
    expect(sender.expired).toEqual([{ messageId: id, receiverId: bob.id, delivered: false }]);
    expect((await storedMessage(a, id)).exists).toBe(false);
    // Both instances keep sweeping: still one.
    await pause(5 * SWEEP_MS);
    expect(sender.expired).toHaveLength(1);
    await waitFor(async () => !(await storedNotice(a, id)).exists, 10_000, "the acknowledged notice's deletion");

    sender.socket.disconnect();
    const again = await connectSender(b, alice);
    await pause(5 * SWEEP_MS);
    expect(again.expired).toEqual([]);

    const receiver = await connectReceiving(a, bob.token);
    await waitFor(() => receiver.received.length === 1, 10_000, "the backlog");
    await pause(500);
    expect(receiver.received.map((m) => m.id)).toEqual([plain.body.messageId]);
    expect((await history(a, bob, alice)).body).toMatchObject({ total: 1, messages: [{ id: plain.body.messageId }] });
  });

  it("when the sender is offline at expiry, then message_expired comes on the next connection, again until acknowledged, never after", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const id = (await send(a, alice, bob, { expiresInSeconds: 5 })).body.messageId;
    advance(5000);
    await waitFor(async () => (await storedNotice(a, id)).exists, 10_000, "the sweep");

    const unacknowledging = await connectSender(b, alice, { acknowledge: false });
    await waitFor(() => unacknowledging.expired.length === 1, 10_000, "message_expired on connection");
    unacknowledging.socket.disconnect();

    const acknowledging = await connectSender(a, alice);
    await waitFor(() => acknowledging.expired.length === 1, 10_000, "message_expired again");
    expect(acknowledging.expired[0]).toEqual({ messageId: id, receiverId: bob.id, delivered: false });
    await waitFor(async () => !(await storedNotice(a, id)).exists, 10_000, "the acknowledgement");
    acknowledging.socket.disconnect();

    const later = await connectSender(b, alice);
    await pause(5 * SWEEP_MS);
    expect(later.expired).toEqual([]);
  });

  it("when the receiver got the message but acknowledges only after expiresAt, then it is not delivered again and the sender gets message_expired, not message_delivered", async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const sender = await connectSender(a, alice);
    const delivered = collect(sender.socket, "message_delivered");
    const holding = await connectReceiving(b, bob.token, { acknowledge: false });
    const id = (await send(a, alice, bob, { expiresInSeconds: 5 })).body.messageId;
    await waitFor(() => holding.received.length === 1, 10_000, "message_received");

    advance(5000);
    expect(await emitWithAck(holding.socket, "message_ack", { messageId: id })).toEqual({ success: true });
    await waitFor(() => sender.expired.length === 1, 10_000, "message_expired");
    expect(delivered).toEqual([]);

    holding.socket.disconnect();
    const reconnected = await connectReceiving(a, bob.token);
    await pause(500);
    expect(reconnected.received).toEqual([]);
  });
});

describe("history around expired messages (no sweep: the read-time filter alone)", () => {
  /** Oldest first: 2 expiring, 3 plain, 4 expiring, 3 plain, 4 expiring. Returns the plain ids, oldest first. */
  async function conversation(alice: RegisteredUser, bob: RegisteredUser): Promise<string[]> {
    const plain: string[] = [];
    for (const [count, expiring] of [
      [2, true],
      [3, false],
      [4, true],
      [3, false],
      [4, true],
    ] as const) {
      for (let i = 0; i < count; i++) {
        // Alternating directions: the conversation holds both.
        const [from, to] = i % 2 === 0 ? [alice, bob] : [bob, alice];
        const sent = await send(quiet, from, to, expiring ? { expiresInSeconds: 5 } : {});
        expect(sent.status).toBe(201);
        if (!expiring) plain.push(sent.body.messageId);
      }
    }
    return plain;
  }

  it("when expired messages lie between and around live ones, then every page is full, hasMore and total count live messages only", async () => {
    const [alice, bob] = await Promise.all([registerUser(quiet), registerUser(quiet)]);
    const plain = await conversation(alice, bob);
    expect((await history(quiet, alice, bob, "?limit=100")).body.total).toBe(16);
    quiet.clock.advance(5000);

    const ids = (page: any) => page.body.messages.map((m: any) => m.id);
    const first = await history(quiet, alice, bob, "?limit=3");
    expect(first.body).toMatchObject({ total: 6, hasMore: true });
    expect(ids(first)).toEqual(plain.slice(3));

    const second = await history(quiet, bob, alice, `?limit=3&before=${ids(first)[0]}`);
    expect(second.body).toMatchObject({ total: 6, hasMore: false });
    expect(ids(second)).toEqual(plain.slice(0, 3));

    const byOffset = await history(quiet, alice, bob, "?limit=2&offset=3");
    expect(ids(byOffset)).toEqual(plain.slice(1, 3));
    expect(byOffset.body.hasMore).toBe(true);
    const lastByOffset = await history(quiet, alice, bob, "?limit=5&offset=4");
    expect(ids(lastByOffset)).toEqual(plain.slice(0, 2));
    expect(lastByOffset.body.hasMore).toBe(false);
    expect((await history(quiet, alice, bob, "?offset=6")).body).toMatchObject({ messages: [], hasMore: false, total: 6 });
    expect(ids(await history(quiet, alice, bob, "?limit=100"))).toEqual(plain);

    // Still stored (no sweep ran here): the filter, not the deletion, kept them out.
    expect((await quiet.db.collection("messages").where("expiresAt", "!=", null).get()).size).toBeGreaterThanOrEqual(10);
  });

  it("when the sweep runs, then it deletes the expired messages and leaves a notice for each never acknowledged; pages are unchanged", async () => {
    const [alice, bob] = await Promise.all([registerUser(quiet), registerUser(quiet)]);
    const plain = await conversation(alice, bob);
    quiet.clock.advance(5000);
    const before = (await history(quiet, alice, bob, "?limit=100")).body;
    const report = await quiet.services.messageExpiry.run();
    expect(report.expiredUndelivered).toBeGreaterThanOrEqual(10);
    const conversationId = [alice.id, bob.id].sort().join("__");
    const left = await quiet.db.collection("messages").where("conversationId", "==", conversationId).get();
    expect(left.docs.map((doc) => doc.id).sort()).toEqual([...plain].sort());
    const notices = await quiet.db.collection("messageExpiries").where("receiverId", "in", [alice.id, bob.id]).get();
    expect(notices.size).toBe(10);
    expect((await history(quiet, alice, bob, "?limit=100")).body).toEqual(before);
  });

  it("when the `before` message has expired and been deleted, then 404 NOT_FOUND on before", async () => {
    const [alice, bob] = await Promise.all([registerUser(quiet), registerUser(quiet)]);
    const id = (await send(quiet, alice, bob, { expiresInSeconds: 5 })).body.messageId;
    quiet.clock.advance(5000);
    await quiet.services.messageExpiry.run();
    expectError(await history(quiet, alice, bob, `?before=${id}`), 404, "NOT_FOUND", "before");
  });
});
