import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app";
import { messageBody } from "../support/messages";
import { closeAllSockets, collect, connect, connectAs, emitWithAck, nextEvent, waitFor } from "../support/sockets";
import { expectError } from "../support/expect-error";
import { initiateExchange, person, signedEphemeral, type Person } from "../support/key-exchange";
import { newEphemeral, signP1363 } from "../support/webcrypto";
import { countDocuments, forgedCredentials, send, upload, uploadForm } from "./support";

/**
 * The authorization matrix: every endpoint and every socket event, with every kind of bad credential,
 * and with another user's perfectly valid token on alice's things. Each is answered with the right
 * status, nothing is written, and no response carries anyone else's data.
 *
 * The world: alice has carol as a contact, has sent carol a message, uploaded carol a file and started a
 * key exchange with carol. Bob is a stranger to both.
 */

let app: TestApp;
let alice: Person;
let bob: Person;
let carol: Person;
let messageId: string;
let exchangeId: string;
let fileId: string;
const fileBytes = randomBytes(4096);
/** What only alice and carol should ever see. */
let secrets: string[];
/** Alice's token from a second session that has logged out. */
let revokedToken: string;
/** Alice's phone, a live second device, and the link request it made. */
let phoneDeviceId: string;
let linkRequestId: string;

beforeAll(async () => {
  app = await startTestApp({}, { relay: {} });
  [alice, bob, carol] = await Promise.all([person(app), person(app), person(app)]);
  await app.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: carol.username } });

  const message = messageBody(carol.id);
  const sent = await app.request("POST", "/api/messages/send", { token: alice.token, body: message });
  messageId = sent.body.messageId;
  exchangeId = await initiateExchange(app, alice, carol);
  const exchange = await app.request("GET", `/api/keyexchange/${exchangeId}`, { token: alice.token });
  const uploaded = await upload(app, alice, carol, fileBytes);
  fileId = uploaded.body.fileId;

  const login = await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: alice.password } });
  revokedToken = login.body.token;
  expect((await app.request("POST", "/api/auth/logout", { token: revokedToken })).status).toBe(200);

  const phone = await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: alice.password, deviceName: "Phone" } });
  phoneDeviceId = phone.body.deviceId;
  const linkEphemeral = (await newEphemeral()).publicKeyPem;
  linkRequestId = (await app.request("POST", "/api/devices/link-requests", { token: phone.body.token, body: { ephemeralPublicKey: linkEphemeral } })).body.requestId;

  secrets = [
    linkEphemeral.split("\n")[1]!,
    alice.email,
    carol.email,
    message.encryptedContent,
    message.nonce,
    message.signature,
    exchange.body.exchange.initiatorSignature,
    exchange.body.exchange.initiatorEphemeralPublicKey.split("\n")[1],
    uploaded.body.file.iv,
    uploaded.body.file.signature,
    fileBytes.toString("base64").slice(0, 40),
  ];
});

afterEach(() => closeAllSockets());
afterAll(async () => {
  await app?.close();
});

function expectNothingOf(text: string, except: string[] = []): void {
  for (const secret of secrets.filter((value) => !except.includes(value))) expect(text).not.toContain(secret);
}

/** Every endpoint behind auth, aimed at alice's and carol's things. */
const ENDPOINTS: Array<{ name: string; method: string; path: () => string; body?: () => Promise<RequestInit["body"]> | RequestInit["body"] }> = [
  { name: "POST /auth/logout", method: "POST", path: () => "/api/auth/logout" },
  { name: "GET /users/profile", method: "GET", path: () => "/api/users/profile" },
  { name: "GET /users/contacts", method: "GET", path: () => "/api/users/contacts" },
  { name: "POST /users/add-contact", method: "POST", path: () => "/api/users/add-contact", body: () => JSON.stringify({ username: bob.username }) },
  { name: "DELETE /users/contacts/:contactId", method: "DELETE", path: () => `/api/users/contacts/${carol.id}` },
  { name: "GET /users/search", method: "GET", path: () => `/api/users/search?q=${carol.username.slice(0, 6)}` },
  { name: "POST /users/block", method: "POST", path: () => "/api/users/block", body: () => JSON.stringify({ userId: bob.id }) },
  { name: "DELETE /users/block/:userId", method: "DELETE", path: () => `/api/users/block/${carol.id}` },
  { name: "GET /users/blocked", method: "GET", path: () => "/api/users/blocked" },
  { name: "POST /messages/send", method: "POST", path: () => "/api/messages/send", body: () => JSON.stringify(messageBody(carol.id)) },
  { name: "GET /messages/:contactId", method: "GET", path: () => `/api/messages/${carol.id}` },
  {
    name: "POST /keyexchange/initiate",
    method: "POST",
    path: () => "/api/keyexchange/initiate",
    body: async () => JSON.stringify({ targetUserId: carol.id, ...(await signedEphemeral(alice)) }),
  },
  {
    name: "POST /keyexchange/respond",
    method: "POST",
    path: () => "/api/keyexchange/respond",
    body: async () => JSON.stringify({ exchangeId, ...(await signedEphemeral(carol)) }),
  },
  { name: "GET /keyexchange/pending", method: "GET", path: () => "/api/keyexchange/pending" },
  { name: "GET /keyexchange/:exchangeId", method: "GET", path: () => `/api/keyexchange/${exchangeId}` },
  { name: "POST /files/upload", method: "POST", path: () => "/api/files/upload", body: () => uploadForm(carol.id, randomBytes(64)) },
  { name: "GET /files/:fileId", method: "GET", path: () => `/api/files/${fileId}` },
  { name: "GET /files/:fileId/meta", method: "GET", path: () => `/api/files/${fileId}/meta` },
  { name: "DELETE /files/:fileId", method: "DELETE", path: () => `/api/files/${fileId}` },
  { name: "GET /devices", method: "GET", path: () => "/api/devices" },
  { name: "DELETE /devices/:deviceId", method: "DELETE", path: () => `/api/devices/${phoneDeviceId}` },
  {
    name: "POST /devices/link-requests",
    method: "POST",
    path: () => "/api/devices/link-requests",
    body: async () => JSON.stringify({ ephemeralPublicKey: (await newEphemeral()).publicKeyPem }),
  },
  { name: "GET /devices/link-requests", method: "GET", path: () => "/api/devices/link-requests" },
  { name: "GET /devices/link-requests/:requestId", method: "GET", path: () => `/api/devices/link-requests/${linkRequestId}` },
  {
    name: "POST /devices/link-requests/:requestId/approve",
    method: "POST",
    path: () => `/api/devices/link-requests/${linkRequestId}/approve`,
    body: async () => JSON.stringify(await linkApproval(alice)),
  },
  { name: "POST /devices/link-requests/:requestId/reject", method: "POST", path: () => `/api/devices/link-requests/${linkRequestId}/reject` },
];

/** A well-formed approval of alice's phone's link request, signed by `signer`'s identity key. */
async function linkApproval(signer: Person) {
  const ephemeralPublicKey = (await newEphemeral()).publicKeyPem;
  const signature = await signP1363(signer.identity, `${linkRequestId}\n${ephemeralPublicKey}`);
  return { ephemeralPublicKey, encryptedPayload: "c2VjcmV0", iv: "aXZpdml2aXZpdml2", authTag: "dGFndGFndGFndGFndGFn", signature };
}

/** Each bad credential, as the Authorization header it travels in, and the code it must get. */
const CREDENTIALS: Array<{ kind: string; code: string; header: () => string | undefined }> = [
  { kind: "no token", code: "UNAUTHORIZED", header: () => undefined },
  { kind: "a malformed token", code: "UNAUTHORIZED", header: () => `Bearer ${forgedCredentials(app, alice, bob).malformed}` },
  { kind: "a tampered token", code: "UNAUTHORIZED", header: () => `Bearer ${forgedCredentials(app, bob, alice).tampered}` },
  { kind: "an alg-none token", code: "UNAUTHORIZED", header: () => `Bearer ${forgedCredentials(app, alice, bob).algNone}` },
  { kind: "a wrong-audience token", code: "UNAUTHORIZED", header: () => `Bearer ${forgedCredentials(app, alice, bob).wrongAudience}` },
  { kind: "an expired token", code: "TOKEN_EXPIRED", header: () => `Bearer ${forgedCredentials(app, alice, bob).expired}` },
  { kind: "a revoked token", code: "UNAUTHORIZED", header: () => `Bearer ${revokedToken}` },
];

describe("HTTP endpoints with bad credentials", () => {
  let before: Record<string, number>;
  beforeAll(async () => {
    before = await countDocuments(app.db);
  });

  describe.each(CREDENTIALS)("with $kind", ({ code, header }) => {
    it.each(ENDPOINTS)(`when $name is called, then 401 ${code} and nothing of anyone's`, async ({ method, path, body }) => {
      const payload = await body?.();
      const contentType = typeof payload === "string" ? { "Content-Type": "application/json" } : undefined;
      const response = await send(app, method, path(), { authorization: header(), body: payload, headers: contentType });

      expectError(response, 401, code);
      expectNothingOf(response.bytes.toString("utf8"));
    });
  });

  it("when the whole matrix has run, then nothing was written, deleted or revoked", async () => {
    expect(await countDocuments(app.db)).toEqual(before);
    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(200);
    expect((await app.request("GET", `/api/files/${fileId}/meta`, { token: carol.token })).status).toBe(200);
    expect((await app.request("GET", `/api/keyexchange/${exchangeId}`, { token: carol.token })).body.exchange.status).toBe("pending");
    expect((await app.request("GET", `/api/devices/link-requests/${linkRequestId}`, { token: alice.token })).body.request.status).toBe("pending");
    expect((await app.request("GET", "/api/devices", { token: alice.token })).body.devices.map((device: { id: string }) => device.id)).toContain(phoneDeviceId);
  });
});

describe("HTTP endpoints with another user's valid token (bob on alice's and carol's things)", () => {
  it("when bob reads the profile and contacts, then they are his own, with nothing of alice's", async () => {
    const profile = await app.request("GET", "/api/users/profile", { token: bob.token });
    const contacts = await app.request("GET", "/api/users/contacts", { token: bob.token });

    expect(profile.body.user.id).toBe(bob.id);
    expect(contacts.body.contacts).toEqual([]);
    expectNothingOf(JSON.stringify([profile.body, contacts.body]));
  });

  it("when bob deletes carol from contacts, then 404 and alice still has carol", async () => {
    expectError(await app.request("DELETE", `/api/users/contacts/${carol.id}`, { token: bob.token }), 404, "NOT_FOUND");

    const contacts = await app.request("GET", "/api/users/contacts", { token: alice.token });
    expect(contacts.body.contacts.map((contact: { id: string }) => contact.id)).toEqual([carol.id]);
  });

  it("when bob searches for carol, then he sees her public profile only, never her email", async () => {
    const response = await app.request("GET", `/api/users/search?q=${carol.username}`, { token: bob.token });

    expect(response.body.users).toEqual([{ id: carol.id, username: carol.username, publicKey: carol.publicKey }]);
    expectNothingOf(JSON.stringify(response.body));
  });

  it("when bob asks for the conversation with carol or with alice, then it is his own (empty), never theirs", async () => {
    for (const other of [carol, alice]) {
      const response = await app.request("GET", `/api/messages/${other.id}`, { token: bob.token });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ success: true, messages: [], total: 0, hasMore: false });
      expectNothingOf(JSON.stringify(response.body));
    }
  });

  it("when bob pages with alice's message as the cursor, then 404 and nothing of the message", async () => {
    const response = await app.request("GET", `/api/messages/${carol.id}?before=${messageId}`, { token: bob.token });

    expectError(response, 404, "NOT_FOUND");
    expectNothingOf(JSON.stringify(response.body));
  });

  it("when bob reads, lists or responds to alice's key exchange with carol, then 404 or nothing, and it stays pending", async () => {
    const read = await app.request("GET", `/api/keyexchange/${exchangeId}`, { token: bob.token });
    const pending = await app.request("GET", "/api/keyexchange/pending", { token: bob.token });
    const respond = await app.request("POST", "/api/keyexchange/respond", {
      token: bob.token,
      body: { exchangeId, ...(await signedEphemeral(bob)) },
    });

    expectError(read, 404, "NOT_FOUND");
    expect(pending.body).toMatchObject({ success: true, incoming: [], outgoing: [] });
    expectError(respond, 404, "NOT_FOUND");
    expectNothingOf(JSON.stringify([read.body, pending.body, respond.body]));
    expect((await app.request("GET", `/api/keyexchange/${exchangeId}`, { token: carol.token })).body.exchange.status).toBe("pending");
  });

  it("when bob downloads, reads the metadata of or deletes alice's file for carol, then 404 each time and the file is intact", async () => {
    for (const [method, path] of [
      ["GET", `/api/files/${fileId}`],
      ["GET", `/api/files/${fileId}/meta`],
      ["DELETE", `/api/files/${fileId}`],
    ] as const) {
      const response = await send(app, method, path, { authorization: `Bearer ${bob.token}` });
      expectError(response, 404, "NOT_FOUND");
      expect(response.bytes.includes(fileBytes.subarray(0, 64))).toBe(false);
      expectNothingOf(response.bytes.toString("utf8"));
    }

    const download = await send(app, "GET", `/api/files/${fileId}`, { authorization: `Bearer ${carol.token}` });
    expect(download.bytes.equals(fileBytes)).toBe(true);
  });

  it("when bob lists, removes, reads, approves or rejects alice's devices and link requests, then his own (none) or 404, and all stay", async () => {
    const devices = await app.request("GET", "/api/devices", { token: bob.token });
    const requests = await app.request("GET", "/api/devices/link-requests", { token: bob.token });
    expect(devices.body.devices.map((device: { id: string }) => device.id)).not.toContain(phoneDeviceId);
    expect(requests.body).toEqual({ success: true, requests: [] });
    const refused = [
      await app.request("DELETE", `/api/devices/${phoneDeviceId}`, { token: bob.token }),
      await app.request("GET", `/api/devices/link-requests/${linkRequestId}`, { token: bob.token }),
      await app.request("POST", `/api/devices/link-requests/${linkRequestId}/approve`, { token: bob.token, body: await linkApproval(bob) }),
      await app.request("POST", `/api/devices/link-requests/${linkRequestId}/reject`, { token: bob.token }),
    ];
    for (const response of refused) expectError(response, 404, "NOT_FOUND");
    expectNothingOf(JSON.stringify([devices.body, requests.body, ...refused.map((response) => response.body)]));
    expect((await app.request("GET", `/api/devices/link-requests/${linkRequestId}`, { token: alice.token })).body.request.status).toBe("pending");
    expect((await app.request("GET", "/api/devices", { token: alice.token })).body.devices.map((device: { id: string }) => device.id)).toContain(phoneDeviceId);
  });

  it("when bob sends a message claiming to be alice, then it is stored as his", async () => {
    const response = await app.request("POST", "/api/messages/send", { token: bob.token, body: { ...messageBody(carol.id), senderId: alice.id } });

    expect(response.status).toBe(201);
    expect(response.body.message.senderId).toBe(bob.id);
  });

  it("when bob uploads a file claiming to be alice, then he is its uploader", async () => {
    const response = await send(app, "POST", "/api/files/upload", {
      authorization: `Bearer ${bob.token}`,
      body: uploadForm(carol.id, randomBytes(32), { uploaderId: alice.id }),
    });

    expect(response.status).toBe(201);
    expect(response.body.file.uploaderId).toBe(bob.id);
  });

  it("when bob logs out, then only his own session ends; alice's token keeps working", async () => {
    const bobSession = await app.request("POST", "/api/auth/login", { body: { email: bob.email, password: bob.password } });

    expect((await app.request("POST", "/api/auth/logout", { token: bobSession.body.token })).status).toBe(200);

    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(200);
    expect((await app.request("GET", "/api/users/profile", { token: bob.token })).status).toBe(200);
  });
});

describe("socket events with bad credentials", () => {
  const SOCKET_CREDENTIALS = CREDENTIALS.filter(({ kind }) => kind !== "no token");

  describe.each(SOCKET_CREDENTIALS)("with $kind", ({ code, header }) => {
    it.each(["the handshake", "the authenticate event"])(`when it comes in %s, then auth_error ${code}, disconnect, and nothing delivered`, async (way) => {
      const token = header()!.replace(/^Bearer /, "");
      const socket = way === "the handshake" ? connect(app, { token }) : connect(app);
      const received = collect(socket, "message_received");
      const disconnected = nextEvent(socket, "disconnect");
      if (way !== "the handshake") socket.emit("authenticate", { token: `Bearer ${token}` });

      expect(await nextEvent(socket, "auth_error")).toMatchObject({ code });
      await disconnected;
      expect(received).toEqual([]);
    });
  });

  it.each([
    { event: "join_room", payload: () => ({ userId: alice.id }) },
    { event: "send_message", payload: () => messageBody(carol.id) },
    { event: "message_ack", payload: () => ({ messageId }) },
    { event: "typing_start", payload: () => ({ contactId: carol.id }) },
    { event: "typing_stop", payload: () => ({ contactId: carol.id }) },
  ])("when $event comes before any authentication, then UNAUTHORIZED and nothing happens", async ({ event, payload }) => {
    const socket = connect(app);
    await nextEvent(socket, "connect");
    const before = await countDocuments(app.db);

    expect(await emitWithAck(socket, event, payload())).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } });
    socket.emit(event, payload());
    expect(await nextEvent(socket, "error")).toMatchObject({ code: "UNAUTHORIZED" });

    expect(await countDocuments(app.db)).toEqual(before);
  });
});

describe("socket events with another user's valid token (bob)", () => {
  it("when bob joins alice's room, then FORBIDDEN and he gets none of her traffic", async () => {
    const socket = await connectAs(app, bob.token);
    const received = collect(socket, "message_received");

    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    expect(await emitWithAck(socket, "join_room", { userId: carol.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    await app.request("POST", "/api/messages/send", { token: alice.token, body: messageBody(carol.id) });
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(received).toEqual([]);
  });

  it("when bob acknowledges alice's message to carol, then it stays undelivered and carol still gets it", async () => {
    const socket = await connectAs(app, bob.token);

    await emitWithAck(socket, "message_ack", { messageId });

    expect((await app.db.collection("messages").doc(messageId).get()).get("deliveredAt")).toBeNull();
    const carolSocket = connect(app, { token: carol.token });
    const received = collect(carolSocket, "message_received");
    await waitFor(() => received.some((record) => record.id === messageId), 5000, "carol's delivery");
  });

  it("when bob sends typing indicators to alice or carol, then FORBIDDEN: they are not related", async () => {
    const socket = await connectAs(app, bob.token);

    for (const target of [alice, carol]) {
      expect(await emitWithAck(socket, "typing_start", { contactId: target.id })).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    }
  });

  it("when bob sends a message on the socket naming alice as sender, then it is stored as his", async () => {
    const socket = await connectAs(app, bob.token);

    const answer = await emitWithAck(socket, "send_message", { ...messageBody(carol.id), senderId: alice.id });

    expect(answer).toMatchObject({ success: true, message: { senderId: bob.id } });
  });
});
