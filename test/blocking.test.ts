import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../functions/src/shared/ids";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { messageBody, sendMessage } from "./support/messages";
import { closeAllSockets, collect, connectAs, emitWithAck, nextEvent } from "./support/sockets";
import { upload } from "./security/support";
import { expectError } from "./support/expect-error";
import { person, signedEphemeral, type Person } from "./support/key-exchange";

/**
 * Blocking (issue #15): while A blocks B, B cannot reach A (messages, key exchanges, files: 403
 * BLOCKED; typing: dropped), and neither sees the other's presence. Through real HTTP and sockets.
 */
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ TYPING_LIMIT: "1000" }, { relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await app.close();
});

const block = (by: RegisteredUser, userId: string) => app.request("POST", "/api/users/block", { token: by.token, body: { userId } });
const unblock = (by: RegisteredUser, userId: string) => app.request("DELETE", `/api/users/block/${userId}`, { token: by.token });
const blockedOf = (user: RegisteredUser) => app.request("GET", "/api/users/blocked", { token: user.token });
const addContact = (user: RegisteredUser, other: RegisteredUser) =>
  app.request("POST", "/api/users/add-contact", { token: user.token, body: { username: other.username } });

async function mutualContacts(): Promise<[Person, Person]> {
  const [alice, bob] = await Promise.all([person(app), person(app)]);
  await addContact(alice, bob);
  await addContact(bob, alice);
  return [alice, bob];
}

/** Sleeps long enough for an event that would be published to have arrived on this one instance. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 700));

describe("POST /api/users/block, DELETE /api/users/block/:userId, GET /api/users/blocked", () => {
  it("when a user blocks another twice, then 200 both times and the list holds them once, as { id, username }", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    expect((await blockedOf(alice)).body).toEqual({ success: true, users: [] });
    expect(await block(alice, bob.id)).toMatchObject({ status: 200, body: { success: true } });
    expect(await block(alice, bob.id)).toMatchObject({ status: 200, body: { success: true } });
    expect((await block(alice, carol.id)).status).toBe(200);
    expect((await blockedOf(alice)).body).toEqual({
      success: true,
      users: [
        { id: bob.id, username: bob.username },
        { id: carol.id, username: carol.username },
      ],
    });
    expect((await blockedOf(bob)).body.users).toEqual([]);
  });

  it("when a user unblocks, then 200, again 200, and the user is gone from the list", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await block(alice, bob.id);
    expect(await unblock(alice, bob.id)).toMatchObject({ status: 200, body: { success: true } });
    expect(await unblock(alice, bob.id)).toMatchObject({ status: 200, body: { success: true } });
    expect((await blockedOf(alice)).body.users).toEqual([]);
  });

  it("when blocking yourself, then 400 VALIDATION_ERROR; an unknown user 404; a malformed id 400", async () => {
    const alice = await registerUser(app);
    expectError(await block(alice, alice.id), 400, "VALIDATION_ERROR");
    expectError(await block(alice, newId("user")), 404, "NOT_FOUND");
    expectError(await block(alice, "../x"), 400, "VALIDATION_ERROR");
    expectError(await unblock(alice, "not-an-id"), 400, "VALIDATION_ERROR");
    expect((await blockedOf(alice)).body.users).toEqual([]);
  });

  it("when called without a token, then 401", async () => {
    expectError(await app.request("POST", "/api/users/block", { body: { userId: newId("user") } }), 401);
    expectError(await app.request("GET", "/api/users/blocked"), 401);
  });
});

describe("while A blocks B", () => {
  it("when B sends to A over REST, then 403 BLOCKED and nothing is stored; A can still send to B; earlier messages stay", async () => {
    const [alice, bob] = await mutualContacts();
    const before = await sendMessage(app, bob, alice);
    expect(before.status).toBe(201);
    await block(alice, bob.id);

    const refused = await sendMessage(app, bob, alice);
    expectError(refused, 403, "BLOCKED");
    expect((await sendMessage(app, alice, bob)).status).toBe(201);

    for (const viewer of [alice, bob]) {
      const other = viewer === alice ? bob : alice;
      const history = await app.request("GET", `/api/messages/${other.id}`, { token: viewer.token });
      expect(history.body.messages.map((message: { id: string }) => message.id)).toContain(before.body.messageId);
      expect(history.body.messages.filter((message: { senderId: string }) => message.senderId === bob.id)).toHaveLength(1);
    }

    await unblock(alice, bob.id);
    expect((await sendMessage(app, bob, alice)).status).toBe(201);
  });

  it("when B retries a message stored before the block, then it is answered as a retry (200, duplicate), nothing new stored", async () => {
    const [alice, bob] = await mutualContacts();
    const body = messageBody(alice.id);
    const first = await app.request("POST", "/api/messages/send", { token: bob.token, body });
    expect(first.status).toBe(201);
    await block(alice, bob.id);
    const retry = await app.request("POST", "/api/messages/send", { token: bob.token, body });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ duplicate: true, messageId: first.body.messageId });
    // A new message (a fresh nonce) is refused.
    expectError(await app.request("POST", "/api/messages/send", { token: bob.token, body: { ...body, nonce: randomBytes(16).toString("base64") } }), 403, "BLOCKED");
  });

  it("when B sends to A with send_message, then the ack is BLOCKED and A receives nothing", async () => {
    const [alice, bob] = await mutualContacts();
    await block(alice, bob.id);
    const aliceSocket = await connectAs(app, alice.token);
    const received = collect(aliceSocket, "message_received");
    const bobSocket = await connectAs(app, bob.token);
    expect(await emitWithAck(bobSocket, "send_message", messageBody(alice.id))).toMatchObject({ success: false, error: { code: "BLOCKED" } });
    await settle();
    expect(received).toEqual([]);
  });

  it("when B starts a key exchange with A, then 403 BLOCKED; A can still start one with B", async () => {
    const [alice, bob] = await mutualContacts();
    await block(alice, bob.id);
    const refused = await app.request("POST", "/api/keyexchange/initiate", { token: bob.token, body: { targetUserId: alice.id, ...(await signedEphemeral(bob)) } });
    expectError(refused, 403, "BLOCKED");
    const allowed = await app.request("POST", "/api/keyexchange/initiate", { token: alice.token, body: { targetUserId: bob.id, ...(await signedEphemeral(alice)) } });
    expect(allowed.status).toBe(201);
  });

  it("when B uploads a file for A, then 403 BLOCKED and no record is kept; A can still upload one for B", async () => {
    const [alice, bob] = await mutualContacts();
    await block(alice, bob.id);
    const refused = await upload(app, bob, alice, randomBytes(2048));
    expectError(refused, 403, "BLOCKED");
    const kept = await app.db.collection("files").where("uploaderId", "==", bob.id).get();
    expect(kept.size).toBe(0);
    expect((await upload(app, alice, bob, randomBytes(2048))).status).toBe(201);
  });

  it("when B types to A (or A to B), then the ack succeeds but the indicator is dropped", async () => {
    const [alice, bob] = await mutualContacts();
    const aliceSocket = await connectAs(app, alice.token);
    const bobSocket = await connectAs(app, bob.token);
    const aliceSees = collect(aliceSocket, "typing_indicator");
    const bobSees = collect(bobSocket, "typing_indicator");
    // Before the block, typing flows.
    const first = nextEvent(aliceSocket, "typing_indicator");
    expect(await emitWithAck(bobSocket, "typing_start", { contactId: alice.id })).toMatchObject({ success: true });
    await first;
    aliceSees.length = 0;

    await block(alice, bob.id);
    expect(await emitWithAck(bobSocket, "typing_start", { contactId: alice.id })).toEqual({ success: true });
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id })).toEqual({ success: true });
    await settle();
    expect(aliceSees).toEqual([]);
    expect(bobSees).toEqual([]);
  });

  it("when either comes online or goes offline, then the other gets no user_online / user_offline, and the contacts API shows no presence", async () => {
    const [alice, bob] = await mutualContacts();
    const carol = await registerUser(app);
    await addContact(alice, carol);
    await addContact(carol, alice);
    await block(alice, bob.id);

    const aliceSocket = await connectAs(app, alice.token);
    const aliceSees = collect(aliceSocket, "user_online");
    const bobSocket = await connectAs(app, bob.token);
    const bobSeesOnline = collect(bobSocket, "user_online");
    const bobSeesOffline = collect(bobSocket, "user_offline");
    // Carol, a mutual contact without a block, is the control: her coming online does reach Alice.
    const carolOnline = nextEvent(aliceSocket, "user_online");
    await connectAs(app, carol.token);
    expect(await carolOnline).toMatchObject({ userId: carol.id });
    aliceSocket.disconnect();
    await settle();
    expect(aliceSees.map((event) => event.userId)).toEqual([carol.id]);
    expect(bobSeesOnline).toEqual([]);
    expect(bobSeesOffline).toEqual([]);

    const aliceView = await app.request("GET", "/api/users/contacts", { token: alice.token });
    expect(aliceView.body.contacts.find((contact: { id: string }) => contact.id === bob.id)).toMatchObject({ isOnline: false, lastSeen: null });
    expect(aliceView.body.contacts.find((contact: { id: string }) => contact.id === carol.id)).toMatchObject({ isOnline: true });
    const bobView = await app.request("GET", "/api/users/contacts", { token: bob.token });
    expect(bobView.body.contacts).toEqual([expect.objectContaining({ id: alice.id, isOnline: false, lastSeen: null })]);
  });
});
