import { Timestamp } from "firebase-admin/firestore";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BACKLOG_WINDOW } from "../functions/src/relay/delivery";
import { conversationIdOf, newId } from "../functions/src/shared/ids";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { sendMessage } from "./support/messages";
import { startRelayProcess } from "./support/relay-process";
import { closeAllSockets, collect, connect, connectAs, connectReceiving, emitWithAck, nextEvent, waitFor } from "./support/sockets";

/**
 * How a message finds its receiver (relay/events.ts, relay/delivery.ts): routed by the send transaction
 * to the instances in the receiver's presence, or read from the backlog by the connecting socket, with
 * nothing lost or repeated in between, and nothing depending on which instance holds whom.
 */
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  a = await startTestApp({ SEND_RATE_BURST: "1000" }, { relay: {} });
  b = await startTestApp({ SEND_RATE_BURST: "1000" }, { projectId: a.projectId, relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await b.close();
  await a.close();
});

async function friends(): Promise<[RegisteredUser, RegisteredUser]> {
  const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
  await a.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: bob.username } });
  await a.request("POST", "/api/users/add-contact", { token: bob.token, body: { username: alice.username } });
  return [alice, bob];
}

/** Sends `count` messages one after another over REST; resolves with their records in send order. */
async function burst(from: RegisteredUser, to: RegisteredUser, count: number, onEach?: (index: number) => Promise<void> | void) {
  const sent = [];
  for (let i = 0; i < count; i++) {
    const response = await sendMessage(a, from, to);
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    sent.push(response.body.message);
    await onEach?.(i);
  }
  return sent;
}

/** Stores `count` undelivered messages from `from` to `to` straight into the layout (faster than the API). */
async function storeUndelivered(from: RegisteredUser, to: RegisteredUser, count: number): Promise<string[]> {
  const ids: string[] = [];
  const start = Date.now() - 60_000;
  // Pending for the receiver's devices, as a send records it (messages/repository.ts append).
  const pendingDevices = (await a.db.collection("users").doc(to.id).get()).get("deviceIds") as string[];
  for (let offset = 0; offset < count; offset += 400) {
    const batch = a.db.batch();
    for (let i = offset; i < Math.min(count, offset + 400); i++) {
      const id = newId("msg");
      ids.push(id);
      batch.set(a.db.collection("messages").doc(id), {
        senderId: from.id,
        receiverId: to.id,
        conversationId: conversationIdOf(from.id, to.id),
        encryptedContent: "AAAA",
        iv: "AAAA",
        authTag: "AAAA",
        nonce: `n${i}`,
        signature: "AAAA",
        messageType: "text",
        sequenceNumber: i + 1,
        timestamp: Timestamp.fromMillis(start + i),
        clientTimestamp: new Date(start + i).toISOString(),
        deliveredAt: null,
        pendingDevices,
      });
    }
    await batch.commit();
  }
  await a.db.collection("pairCounters").doc(`${from.id}__${to.id}`).set({ lastSequence: count, lastTimestampMs: start + count, tokens: 1000, tokensAtMs: Date.now() });
  return ids;
}

const undeliveredIds = async (receiver: RegisteredUser) =>
  (await a.db.collection("messages").where("receiverId", "==", receiver.id).where("deliveredAt", "==", null).get()).docs.map((doc) => doc.id);

describe("routing while connecting", () => {
  it("when a burst is sent while the receiver is connecting, then every message arrives once, in sequence order", async () => {
    const [alice, bob] = await friends();
    let receiving: Awaited<ReturnType<typeof connectReceiving>> | undefined;
    let connecting: Promise<void> | undefined;
    const sent = await burst(alice, bob, 30, (index) => {
      // Connect in the middle of the burst, without waiting: sends go on while the socket registers.
      if (index === 9) connecting = connectReceiving(b, bob.token).then((r) => void (receiving = r));
    });
    await connecting;
    await waitFor(() => receiving!.received.length >= 30, 10_000, "30 messages");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiving!.received.map((m) => m.sequenceNumber)).toEqual(sent.map((m) => m.sequenceNumber));
    expect(receiving!.received).toEqual(sent);
  });

  it("when a relay instance is killed (no hand-off) in the middle of a burst, then after reconnecting to another instance every message is delivered, none acknowledged one twice", async () => {
    const [alice, bob] = await friends();
    const doomed = await startRelayProcess(a);
    try {
      const first = await connectReceiving({ baseUrl: doomed.baseUrl } as TestApp, bob.token);
      const sent = await burst(alice, bob, 40, async (index) => {
        if (index === 19) {
          await waitFor(() => first.received.length >= 10, 10_000, "some messages before the crash");
          doomed.child.kill("SIGKILL");
        }
      });
      await doomed.exited;
      // What the first connection acknowledged before the crash is delivered; nothing else is.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const owed = await undeliveredIds(bob);
      const acknowledgedBefore = sent.map((m) => m.id).filter((id) => !owed.includes(id));
      expect(acknowledgedBefore.length).toBeGreaterThan(0);

      const second = await connectReceiving(b, bob.token);
      await waitFor(() => second.received.length >= owed.length, 10_000, `${owed.length} owed messages`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const secondIds = second.received.map((m) => m.id);
      expect(secondIds).toEqual(sent.map((m) => m.id).filter((id) => owed.includes(id)));
      for (const id of acknowledgedBefore) expect(secondIds).not.toContain(id);
      await waitFor(async () => (await undeliveredIds(bob)).length === 0, 10_000, "every message acknowledged");
    } finally {
      doomed.child.kill("SIGKILL");
    }
  });

  it("when a receiver has more waiting than one page and its window, then it gets all of them in order as it acknowledges, and no more than the window while it does not", async () => {
    const [alice, bob] = await friends();
    const count = BACKLOG_WINDOW * 2 + 50;
    const ids = await storeUndelivered(alice, bob, count);

    const lazy = await connectReceiving(a, bob.token, { acknowledge: false });
    await waitFor(() => lazy.received.length >= BACKLOG_WINDOW, 10_000, "the first window");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lazy.received.map((m) => m.id)).toEqual(ids.slice(0, BACKLOG_WINDOW));
    lazy.socket.disconnect();

    const diligent = await connectReceiving(b, bob.token);
    await waitFor(() => diligent.received.length >= count, 20_000, `${count} messages`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(diligent.received.map((m) => m.id)).toEqual(ids);
    // Live delivery goes on after the backlog.
    const live = await sendMessage(a, alice, bob);
    await waitFor(() => diligent.received.length === count + 1, 5000, "the live message");
    expect(diligent.received[count].id).toBe(live.body.messageId);
  });
});

describe("presence is registered before authenticated", () => {
  it("when a contact types, comes online or gets a receipt right after authenticated, then the event arrives", async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const [alice, bob] = await friends();
      const aliceSocket = await connectAs(a, alice.token);
      // Bob's first event is emitted the moment Bob's socket hears `authenticated`.
      const bobSocket = connect(b, { token: bob.token });
      const typing = nextEvent(bobSocket, "typing_indicator", 5000);
      await nextEvent(bobSocket, "authenticated");
      expect(await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id })).toMatchObject({ success: true });
      expect(await typing).toEqual({ fromUserId: alice.id, toUserId: bob.id, isTyping: true });

      // The same for user_online: Alice reconnects right after Bob is authenticated.
      aliceSocket.disconnect();
      await nextEvent(bobSocket, "user_offline", 5000);
      const online = nextEvent(bobSocket, "user_online", 5000);
      const again = connect(a, { token: alice.token });
      expect(await online).toMatchObject({ userId: alice.id, status: "online" });

      // And a receipt: Bob acknowledges the moment Alice's next socket hears `authenticated`.
      const message = (await sendMessage(a, alice, bob)).body.message;
      again.disconnect();
      const third = connect(a, { token: alice.token });
      const receipt = nextEvent(third, "message_delivered", 5000);
      await nextEvent(third, "authenticated");
      bobSocket.emit("message_ack", { messageId: message.id });
      expect(await receipt).toMatchObject({ messageId: message.id, receiverId: bob.id });
      third.disconnect();
      bobSocket.disconnect();
      again.disconnect();
    }
  });
});

describe("a socket has one user", () => {
  it("when a socket sends a stolen token and then its own at once, then it is never attached to the first user after the second, and hears none of their messages", async () => {
    const [victim, attacker] = await friends();
    const carol = await registerUser(a);
    const socket = connect(a);
    await nextEvent(socket, "connect");
    const seen = collect(socket, "message_received");
    const errors = collect(socket, "auth_error");
    const gone = nextEvent(socket, "disconnect");
    socket.emit("authenticate", { token: victim.token });
    socket.emit("authenticate", { token: attacker.token });
    await gone;
    expect(errors).toEqual([expect.objectContaining({ code: "FORBIDDEN" })]);
    // Nothing of the victim's is held for that socket: no user stays on the instance, no presence leaks.
    await waitFor(() => a.relay!.stats().users === 0 || a.relay!.stats().sockets === 0, 5000, "the socket released");
    await waitFor(async () => Object.keys((await a.db.collection("presence").doc(victim.id).get()).get("instances") ?? {}).length === 0, 5000, "victim's presence cleared");
    await sendMessage(a, carol, victim);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen).toEqual([]);
  });

  it("when an authenticated socket authenticates again as the same user, then authenticated again and it stays; as another user, it is disconnected", async () => {
    const [alice, bob] = await friends();
    const socket = await connectAs(a, alice.token);
    socket.emit("authenticate", { token: `Bearer ${alice.token}` });
    expect(await nextEvent(socket, "authenticated")).toEqual({ userId: alice.id });
    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ success: true });

    const error = nextEvent(socket, "auth_error");
    const gone = nextEvent(socket, "disconnect");
    socket.emit("authenticate", { token: bob.token });
    expect(await error).toMatchObject({ code: "FORBIDDEN" });
    await gone;
  });
});
