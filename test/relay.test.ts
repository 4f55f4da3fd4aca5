import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { messageBody, sendMessage } from "./support/messages";
import { closeAllSockets, collect, connect, connectAs, emitWithAck, nextEvent, waitFor } from "./support/sockets";

/**
 * The realtime relay through the official socket.io-client, against the emulator. Two relay instances
 * share one Firestore project, so delivery across instances is what most tests exercise.
 */
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  a = await startTestApp({}, { relay: { authTimeoutMs: 1500 } });
  b = await startTestApp({}, { projectId: a.projectId, relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await b.close();
  await a.close();
});

const addContact = (app: TestApp, user: RegisteredUser, other: RegisteredUser) =>
  app.request("POST", "/api/users/add-contact", { token: user.token, body: { username: other.username } });

/** Two users who have each other as contacts: presence and typing flow only between such pairs. */
async function friends(): Promise<[RegisteredUser, RegisteredUser]> {
  const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
  await addContact(a, alice, bob);
  await addContact(a, bob, alice);
  return [alice, bob];
}

/** Alice has Bob as a contact; Bob has not added Alice. */
async function oneWay(): Promise<[RegisteredUser, RegisteredUser]> {
  const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
  await addContact(a, alice, bob);
  return [alice, bob];
}

describe("authentication", () => {
  it("when the handshake carries a valid token, then the server answers authenticated with the user id", async () => {
    const alice = await registerUser(a);
    const socket = connect(a, { token: alice.token });
    expect(await nextEvent(socket, "authenticated")).toEqual({ userId: alice.id });
  });

  it("when the authenticate event carries 'Bearer <token>' (or the bare token), then authenticated", async () => {
    const alice = await registerUser(a);
    for (const token of [`Bearer ${alice.token}`, alice.token]) {
      const socket = connect(a);
      socket.emit("authenticate", { token });
      expect(await nextEvent(socket, "authenticated")).toEqual({ userId: alice.id });
    }
  });

  it.each([
    ["garbage", "not-a-token"],
    ["empty", ""],
    ["tampered", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX3gifQ."],
  ])("when the token is %s, then auth_error and the socket is disconnected", async (_label, token) => {
    const socket = connect(a);
    const disconnected = nextEvent(socket, "disconnect");
    socket.emit("authenticate", { token });
    expect(await nextEvent(socket, "auth_error")).toMatchObject({ code: "UNAUTHORIZED" });
    await disconnected;
  });

  it("when the session was logged out, then auth_error", async () => {
    const alice = await registerUser(a);
    await a.request("POST", "/api/auth/logout", { token: alice.token });
    const socket = connect(a, { token: alice.token });
    expect(await nextEvent(socket, "auth_error")).toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("when a socket never authenticates, then it is disconnected after the deadline", async () => {
    const socket = connect(a);
    const error = nextEvent(socket, "auth_error", 5000);
    const disconnected = nextEvent(socket, "disconnect", 5000);
    expect(await error).toMatchObject({ code: "UNAUTHORIZED" });
    await disconnected;
  });

  it("when an unauthenticated socket emits anything else, then it is refused and nothing happens", async () => {
    const [alice, bob] = await friends();
    const socket = connect(a);
    await nextEvent(socket, "connect");
    const refused = await emitWithAck(socket, "send_message", messageBody(bob.id));
    expect(refused).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } });
    socket.emit("join_room", { userId: alice.id });
    expect(await nextEvent(socket, "error")).toMatchObject({ code: "UNAUTHORIZED" });
    const history = await a.request("GET", `/api/messages/${bob.id}`, { token: alice.token });
    expect(history.body.total).toBe(0);
  });

  it("when the user logs out over REST, then the session's sockets are disconnected, on any instance", async () => {
    const alice = await registerUser(a);
    const onA = await connectAs(a, alice.token);
    const onB = await connectAs(b, alice.token);
    const errors = [nextEvent(onA, "auth_error"), nextEvent(onB, "auth_error")];
    const gone = [nextEvent(onA, "disconnect"), nextEvent(onB, "disconnect")];
    await a.request("POST", "/api/auth/logout", { token: alice.token });
    expect(await Promise.all(errors)).toEqual([expect.objectContaining({ code: "UNAUTHORIZED" }), expect.objectContaining({ code: "UNAUTHORIZED" })]);
    await Promise.all(gone);
  });
});

describe("join_room", () => {
  it("when joining your own room, then it succeeds; someone else's is refused with FORBIDDEN", async () => {
    const [alice, bob] = await friends();
    const socket = await connectAs(a, alice.token);
    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ success: true });
    expect(await emitWithAck(socket, "join_room", { userId: bob.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    socket.emit("join_room", { userId: bob.id });
    expect(await nextEvent(socket, "error")).toMatchObject({ code: "FORBIDDEN" });
    // Delivery finds a user's sockets by their room: with Bob online on the same instance, a message
    // to Bob reaches Bob's socket and not Alice's, which was refused his room.
    const bobSocket = await connectAs(a, bob.token);
    const bobReceived = collect(bobSocket, "message_received");
    const received = collect(socket, "message_received");
    const carol = await registerUser(a);
    const sent = await sendMessage(a, carol, bob);
    await waitFor(() => bobReceived.length === 1, 5000, "Bob's message");
    expect(bobReceived[0].id).toBe(sent.body.messageId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toEqual([]);
  });
});

describe("delivery", () => {
  it("when a message is sent over REST on one instance, then the receiver on the other gets it once, and the sender a receipt on ack", async () => {
    const [alice, bob] = await friends();
    const aliceSocket = await connectAs(a, alice.token);
    const bobSocket = await connectAs(b, bob.token);
    const received = collect(bobSocket, "message_received");
    const receipt = nextEvent(aliceSocket, "message_delivered");
    bobSocket.on("message_received", (_message, ack) => ack?.({ ok: true }));
    const sent = await sendMessage(a, alice, bob);
    await waitFor(() => received.length === 1, 10_000, "message_received");
    expect(received[0]).toEqual(sent.body.message);
    expect(await receipt).toMatchObject({ messageId: sent.body.messageId, receiverId: bob.id, deliveredAt: expect.any(String) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toHaveLength(1);
  });

  it("when send_message is used on the socket, then it acks the finalized record and the receiver gets the same", async () => {
    const [alice, bob] = await friends();
    const aliceSocket = await connectAs(b, alice.token);
    const bobSocket = await connectAs(a, bob.token);
    const incoming = nextEvent(bobSocket, "message_received");
    const answer = await emitWithAck(aliceSocket, "send_message", messageBody(bob.id, { sequenceNumber: 7 }));
    expect(answer).toMatchObject({ success: true, message: { senderId: alice.id, receiverId: bob.id, sequenceNumber: 7 } });
    expect(await incoming).toEqual(answer.message);
    const replay = await emitWithAck(aliceSocket, "send_message", messageBody(bob.id, { sequenceNumber: 7 }));
    expect(replay).toMatchObject({ success: false, error: { code: "REPLAY_DETECTED" } });
    const invalid = await emitWithAck(aliceSocket, "send_message", { receiverId: bob.id });
    expect(invalid).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR", details: { field: "encryptedContent" } } });
  });

  it("when a REST send is retried, on either instance, then the receiver still gets the message once", async () => {
    const [alice, bob] = await friends();
    const bobSocket = await connectAs(b, bob.token);
    const received = collect(bobSocket, "message_received");
    const body = messageBody(bob.id);
    const first = await a.request("POST", "/api/messages/send", { token: alice.token, body });
    expect(first.status).toBe(201);
    for (const instance of [a, b, a]) {
      const retry = await instance.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual({ ...first.body, duplicate: true });
    }
    await waitFor(() => received.length === 1, 10_000, "message_received");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(received).toEqual([first.body.message]);
  });

  it("when send_message is retried on the socket, then the ack says duplicate with the original record, and the receiver gets it once", async () => {
    const [alice, bob] = await friends();
    const aliceSocket = await connectAs(b, alice.token);
    const bobSocket = await connectAs(a, bob.token);
    const received = collect(bobSocket, "message_received");
    const payload = messageBody(bob.id);
    const first = await emitWithAck(aliceSocket, "send_message", payload);
    expect(first).toEqual({ success: true, message: expect.objectContaining({ nonce: payload.nonce }) });
    const retry = await emitWithAck(aliceSocket, "send_message", payload);
    expect(retry).toEqual({ success: true, message: first.message, duplicate: true });
    // A retry over the other transport is the same retry.
    const overRest = await a.request("POST", "/api/messages/send", { token: alice.token, body: payload });
    expect(overRest.status).toBe(200);
    expect(overRest.body.message).toEqual(first.message);
    const replay = await emitWithAck(aliceSocket, "send_message", { ...payload, encryptedContent: "b3RoZXI=" });
    expect(replay).toMatchObject({ success: false, error: { code: "REPLAY_DETECTED", details: { field: "nonce" } } });
    await waitFor(() => received.length === 1, 10_000, "message_received");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(received).toEqual([first.message]);
  });

  it("when the receiver was offline, then on connecting it gets only the missed messages, in order, once", async () => {
    const [alice, bob] = await friends();
    const first = await connectAs(a, bob.token);
    first.on("message_received", (_m, ack) => ack?.());
    const early = nextEvent(first, "message_received");
    await sendMessage(a, alice, bob);
    await early;
    await waitFor(async () => (await a.db.collection("messages").where("receiverId", "==", bob.id).where("deliveredAt", "==", null).get()).empty);
    first.disconnect();

    const missed = [];
    for (let i = 0; i < 5; i++) missed.push((await sendMessage(a, alice, bob)).body.message);
    const again = await connectAs(b, bob.token);
    const received = collect(again, "message_received");
    await waitFor(() => received.length >= 5, 10_000, "5 missed messages");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received.map((m) => m.sequenceNumber)).toEqual([2, 3, 4, 5, 6]);
    expect(received).toEqual(missed);
  });

  it("when messages are not acknowledged, then they come back on the next connection; acknowledged ones never", async () => {
    const [alice, bob] = await friends();
    const sent = [(await sendMessage(a, alice, bob)).body.messageId, (await sendMessage(a, alice, bob)).body.messageId];
    const first = await connectAs(a, bob.token);
    const firstSeen = collect(first, "message_received");
    await waitFor(() => firstSeen.length === 2, 10_000, "first delivery");
    first.disconnect();

    const second = await connectAs(b, bob.token);
    const secondSeen: string[] = [];
    second.on("message_received", (message, ack) => {
      secondSeen.push(message.id);
      if (message.id === sent[0]) ack?.(); // acknowledge only the first
    });
    await waitFor(() => secondSeen.length === 2, 10_000, "redelivery");
    expect(secondSeen).toEqual(sent);
    second.emit("message_ack", { messageId: sent[1] });
    await waitFor(async () => (await a.db.collection("messages").doc(sent[1]!).get()).get("deliveredAt") !== null);
    second.disconnect();

    const third = await connectAs(a, bob.token);
    const thirdSeen = collect(third, "message_received");
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(thirdSeen).toEqual([]);
  });

  it("when the receiver has several sockets, then each socket gets each message", async () => {
    const [alice, bob] = await friends();
    const sockets = [await connectAs(a, bob.token), await connectAs(a, bob.token), await connectAs(b, bob.token)];
    const seen = sockets.map((socket) => collect(socket, "message_received"));
    const sent = await sendMessage(a, alice, bob);
    await waitFor(() => seen.every((list) => list.length === 1), 10_000, "all sockets");
    for (const list of seen) expect(list[0].id).toBe(sent.body.messageId);
  });

  it("when several sockets on two instances acknowledge the same message at once, then the sender gets one receipt", async () => {
    const [alice, bob] = await friends();
    const aliceSocket = await connectAs(a, alice.token);
    const receipts = collect(aliceSocket, "message_delivered");
    const bobSockets = [await connectAs(a, bob.token), await connectAs(b, bob.token), await connectAs(b, bob.token), await connectAs(a, bob.token)];
    const seen = bobSockets.map((socket) => collect(socket, "message_received"));
    const sent = await sendMessage(a, alice, bob);
    await waitFor(() => seen.every((list) => list.length === 1), 10_000, "all sockets");
    // Every socket acknowledges twice, both ways, at the same moment.
    for (const socket of bobSockets) {
      socket.emit("message_ack", { messageId: sent.body.messageId });
      socket.emit("message_ack", { messageId: sent.body.messageId });
    }
    await waitFor(() => receipts.length >= 1, 10_000, "message_delivered");
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(receipts).toEqual([{ messageId: sent.body.messageId, receiverId: bob.id, deliveredAt: expect.any(String) }]);
    const stored = await a.db.collection("messages").doc(sent.body.messageId).get();
    expect(stored.get("deliveredAt").toDate().toISOString()).toBe(receipts[0].deliveredAt);
  });
});

describe("the instance's event feed", () => {
  it("when its listener is replaced every 100 ms while events flow, then every event arrives once and in order", async () => {
    // The feed's listener is rolled over to a fresh one so its result set stays small (event-feed.ts).
    // Only the receiving instance rolls this fast: the sender's Firestore client stays clear of the churn.
    const c = await startTestApp({ TYPING_LIMIT: "100000" }, { relay: {} });
    const d = await startTestApp({ TYPING_LIMIT: "100000" }, { projectId: c.projectId, relay: { eventFeedRollMs: 100 } });
    try {
      const [alice, bob] = await Promise.all([registerUser(c), registerUser(c)]);
      await addContact(c, alice, bob);
      await addContact(c, bob, alice);
      const aliceSocket = await connectAs(c, alice.token);
      const bobSocket = await connectAs(d, bob.token);
      // Events are addressed to the instances in the receiver's presence: wait until Bob's is written.
      await waitFor(async () => (await c.db.collection("presence").doc(bob.id).get()).exists, 10_000, "Bob's presence");
      const seen = collect(bobSocket, "typing_indicator");
      const expected: boolean[] = [];
      for (let i = 0; i < 40; i++) {
        const isTyping = i % 2 === 0;
        const answer = await emitWithAck(aliceSocket, isTyping ? "typing_start" : "typing_stop", { contactId: bob.id });
        // On a refusal, the sending instance's last log lines say why.
        expect(answer, `${JSON.stringify(answer)}\n${c.logs.slice(-3).join("\n")}`).toMatchObject({ success: true });
        expected.push(isTyping);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await waitFor(() => seen.length >= 40, 10_000, "40 typing indicators").catch(() => undefined); // the comparison below shows what came
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(seen.map((event) => event.isTyping)).toEqual(expected);
      expect(d.relay!.stats().eventFeedOpen).toBe(true);
    } finally {
      closeAllSockets();
      await d.close();
      await c.close();
    }
  });
});

describe("typing", () => {
  it("when typing to a contact, then only that contact gets typing_indicator, across instances", async () => {
    const [alice, bob] = await friends();
    const carol = await registerUser(a);
    const aliceSocket = await connectAs(a, alice.token);
    const bobSocket = await connectAs(b, bob.token);
    const carolSocket = await connectAs(b, carol.token);
    const carolSees = collect(carolSocket, "typing_indicator");
    const indicator = nextEvent(bobSocket, "typing_indicator");
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id })).toMatchObject({ success: true });
    expect(await indicator).toEqual({ fromUserId: alice.id, toUserId: bob.id, isTyping: true });
    const stop = nextEvent(bobSocket, "typing_indicator");
    aliceSocket.emit("typing_stop", { contactId: bob.id });
    expect(await stop).toMatchObject({ isTyping: false });
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: carol.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: "../x" })).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(carolSees).toEqual([]);
  });

  it("when only one of the two has the other as a contact, then no typing_indicator flows either way", async () => {
    const [alice, bob] = await oneWay();
    const aliceSocket = await connectAs(a, alice.token);
    const bobSocket = await connectAs(b, bob.token);
    const aliceSees = collect(aliceSocket, "typing_indicator");
    const bobSees = collect(bobSocket, "typing_indicator");
    // Bob has not added Alice: refused, on his own list alone.
    expect(await emitWithAck(bobSocket, "typing_start", { contactId: alice.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    // Alice has Bob, Bob has not added her back: acknowledged (the answer does not tell Bob's list) and dropped.
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id })).toEqual({ success: true });
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(aliceSees).toEqual([]);
    expect(bobSees).toEqual([]);

    // Once Bob adds Alice back, it flows.
    await addContact(a, bob, alice);
    const indicator = nextEvent(bobSocket, "typing_indicator");
    expect(await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id })).toEqual({ success: true });
    expect(await indicator).toMatchObject({ fromUserId: alice.id, isTyping: true });
  });

  it("when typing events come too fast, then they are refused with RATE_LIMITED", async () => {
    const [alice, bob] = await friends();
    const socket = await connectAs(a, alice.token);
    const answers = await Promise.all(Array.from({ length: 15 }, () => emitWithAck(socket, "typing_start", { contactId: bob.id })));
    expect(answers.filter((answer) => answer.success === false).map((answer) => answer.error.code)).toContain("RATE_LIMITED");
  });
});

describe("presence", () => {
  it("when a contact comes online and goes offline, then user_online / user_offline reach the other side, and the contacts API agrees", async () => {
    const [alice, bob] = await friends();
    const bobSocket = await connectAs(b, bob.token);
    const online = nextEvent(bobSocket, "user_online");
    const aliceSocket = await connectAs(a, alice.token);
    expect(await online).toMatchObject({ userId: alice.id, status: "online" });
    const contacts = await a.request("GET", "/api/users/contacts", { token: alice.token });
    expect(contacts.body.contacts[0]).toMatchObject({ id: bob.id, isOnline: true });

    const offline = nextEvent(bobSocket, "user_offline");
    aliceSocket.disconnect();
    expect(await offline).toMatchObject({ userId: alice.id, status: "offline", lastSeen: expect.any(String) });
    const bobView = await b.request("GET", "/api/users/contacts", { token: bob.token });
    expect(bobView.body.contacts[0]).toMatchObject({ id: alice.id, isOnline: false, lastSeen: expect.any(String) });
  });

  it("when only one of the two has the other as a contact, then neither gets user_online / user_offline and the contacts API hides presence", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(a), registerUser(a), registerUser(a)]);
    await addContact(a, alice, bob); // one way: Alice has Bob, Bob has not added her
    await addContact(a, bob, carol); // one way: Bob has Carol
    await addContact(a, carol, bob); // Carol has Bob too: the control pair
    const bobSocket = await connectAs(b, bob.token);
    const bobSees = collect(bobSocket, "user_online");
    const aliceSocket = await connectAs(a, alice.token);
    const aliceSees = collect(aliceSocket, "user_online");
    const carolOnline = nextEvent(bobSocket, "user_online");
    await connectAs(a, carol.token);
    expect(await carolOnline).toMatchObject({ userId: carol.id });
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(bobSees.map((event) => event.userId)).toEqual([carol.id]);
    expect(aliceSees).toEqual([]);

    const aliceView = await a.request("GET", "/api/users/contacts", { token: alice.token });
    expect(aliceView.body.contacts).toEqual([expect.objectContaining({ id: bob.id, isOnline: false, lastSeen: null })]);
  });

  it("when a relay instance dies without a goodbye, then a survivor sweeps it and its users go offline", async () => {
    const watcher = await startTestApp({}, { projectId: a.projectId, relay: { presenceTiming: { heartbeatMs: 200, staleAfterMs: 1000 } } });
    try {
      const [alice, bob] = await friends();
      const bobSocket = await connectAs(watcher, bob.token);
      // What a crashed instance leaves behind: a stale heartbeat and Alice listed on it.
      const deadHeartbeat = new Date(Date.now() - 60_000);
      await a.db.collection("relayInstances").doc("relay_crashed_instance_0000").set({ heartbeatAt: deadHeartbeat });
      await a.db.collection("presence").doc(alice.id).set({ instances: { relay_crashed_instance_0000: true } });
      expect(await nextEvent(bobSocket, "user_offline", 10_000)).toMatchObject({ userId: alice.id, lastSeen: deadHeartbeat.toISOString() });
      expect((await a.db.collection("relayInstances").doc("relay_crashed_instance_0000").get()).exists).toBe(false);
      // Bob, on the live watcher instance, stays online (instances cache liveness for a second).
      await waitFor(async () => {
        const view = await a.request("GET", "/api/users/contacts", { token: alice.token });
        return view.body.contacts[0]?.isOnline === true;
      }, 5000, "Bob online");
    } finally {
      await watcher.close();
    }
  });
});

describe("resources", () => {
  it("when 100 sockets connect and disconnect, then the instance holds its one listener throughout and no user stays", async () => {
    const alice = await registerUser(a);
    const listenersSeen = new Set<number>();
    for (let i = 0; i < 100; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, () => connectAs(a, alice.token)));
      listenersSeen.add(a.relay!.stats().listeners);
      for (const socket of batch) socket.disconnect();
    }
    await waitFor(() => a.relay!.stats().users === 0, 10_000, "users released");
    expect(a.relay!.stats()).toMatchObject({ sockets: 0, users: 0, listeners: 1, eventFeedOpen: true });
    expect([...listenersSeen]).toEqual([1]);
  });
});
