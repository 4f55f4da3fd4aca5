import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { approveDeviceLink, requestDeviceLink, type ApiClient } from "../client/src/index.js";
import { COLLECTIONS } from "../functions/src/shared/firestore";
import { startTestApp, type TestApp } from "./support/app";
import { apiClient } from "./support/client";
import { expectError } from "./support/expect-error";
import { closeAllSockets, collect, connect, connectAs, nextEvent, waitFor } from "./support/sockets";
import { newEphemeral, newIdentity, signP1363, type Identity } from "./support/webcrypto";

/**
 * Devices (CONTRACT.md "Devices"): the device list, removal, the per-account cap, and linking a new device
 * end to end encrypted through the typed client's Web Crypto helpers, over real HTTP and Socket.IO.
 */

let app: TestApp;
beforeAll(async () => {
  // Eleven logins on one account from one address: past the default login limit, which is not the point here.
  app = await startTestApp({ LOGIN_ACCOUNT_LIMIT: "1000" }, { relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await app.close();
});

const PASSWORD = "correct horse battery staple";

interface Device {
  api: ApiClient;
  token: string;
  refreshToken: string;
  deviceId: string;
}

interface Account {
  id: string;
  email: string;
  identity: Identity;
  first: Device;
}

async function account(deviceName = "Laptop"): Promise<Account> {
  const identity = await newIdentity();
  const username = `dev_${randomBytes(5).toString("hex")}`;
  const email = `${username}@example.com`;
  const answer = await apiClient(app).register({ email, username, password: PASSWORD, publicKey: identity.publicKeyPem, deviceName });
  return {
    id: answer.user.id,
    email,
    identity,
    first: { api: apiClient(app, answer.token), token: answer.token, refreshToken: answer.refreshToken, deviceId: answer.deviceId },
  };
}

async function login(owner: Account, deviceName?: string): Promise<Device> {
  const answer = await apiClient(app).login({ email: owner.email, password: PASSWORD, ...(deviceName ? { deviceName } : {}) });
  return { api: apiClient(app, answer.token), token: answer.token, refreshToken: answer.refreshToken, deviceId: answer.deviceId };
}

const linkRequestDoc = (requestId: string) => app.db.collection(COLLECTIONS.deviceLinkRequests).doc(requestId).get();

describe("the device list", () => {
  it("when an account has two devices, then each lists both with their names and marks itself current", async () => {
    const alice = await account("Laptop");
    const phone = await login(alice, "Phone");
    const fromPhone = await phone.api.listDevices();
    expect(fromPhone.devices.map((device) => [device.id, device.name, device.current])).toEqual([
      [alice.first.deviceId, "Laptop", false],
      [phone.deviceId, "Phone", true],
    ]);
    for (const device of fromPhone.devices) expect(Date.parse(device.lastActiveAt)).toBeGreaterThanOrEqual(Date.parse(device.createdAt));
    const fromLaptop = await alice.first.api.listDevices();
    expect(fromLaptop.devices.filter((device) => device.current).map((device) => device.id)).toEqual([alice.first.deviceId]);
  });

  it("when a device logs in without a name, then it is named from its User-Agent", async () => {
    const alice = await account();
    const unnamed = await login(alice);
    const { devices } = await unnamed.api.listDevices();
    expect(devices.find((device) => device.id === unnamed.deviceId)!.name).toBe("Node.js");
  });

  it("when a device is removed, then its socket gets auth_error, its token and refresh token are refused, and it leaves the list", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const socket = await connectAs(app, phone.token);
    const laptopSocket = await connectAs(app, alice.first.token);
    const laptopErrors = collect(laptopSocket, "auth_error");
    const ended = nextEvent(socket, "auth_error");
    const disconnected = nextEvent(socket, "disconnect");

    expect(await alice.first.api.removeDevice(phone.deviceId)).toEqual({ success: true });
    expect((await ended).code).toBe("UNAUTHORIZED");
    await disconnected;
    expectError(await app.request("GET", "/api/devices", { token: phone.token }), 401, "UNAUTHORIZED");
    expectError(await app.request("POST", "/api/auth/refresh", { body: { refreshToken: phone.refreshToken } }), 401, "UNAUTHORIZED");
    expect((await alice.first.api.listDevices()).devices.map((device) => device.id)).toEqual([alice.first.deviceId]);
    expect(laptopSocket.connected).toBe(true);
    expect(laptopErrors).toEqual([]);
    // Gone is gone: a second removal is 404.
    expectError(await app.request("DELETE", `/api/devices/${phone.deviceId}`, { token: alice.first.token }), 404, "NOT_FOUND", "deviceId");
  });

  it("when a device removes itself, then it is signed out like a logout", async () => {
    const alice = await account();
    expect(await alice.first.api.removeDevice(alice.first.deviceId)).toEqual({ success: true });
    expectError(await app.request("GET", "/api/devices", { token: alice.first.token }), 401);
  });

  it("when the device id is another user's, unknown or malformed, then 404, 404 and 400", async () => {
    const [alice, bob] = [await account(), await account()];
    expectError(await app.request("DELETE", `/api/devices/${bob.first.deviceId}`, { token: alice.first.token }), 404, "NOT_FOUND", "deviceId");
    expectError(await app.request("DELETE", `/api/devices/dev_${randomBytes(18).toString("base64url")}`, { token: alice.first.token }), 404, "NOT_FOUND");
    expectError(await app.request("DELETE", `/api/devices/${alice.first.deviceId.replace("dev_", "sess_")}`, { token: alice.first.token }), 400, "VALIDATION_ERROR", "deviceId");
    expectError(await app.request("DELETE", "/api/devices/not-an-id", { token: alice.first.token }), 400, "VALIDATION_ERROR", "deviceId");
    // Bob's device is untouched.
    expect((await bob.first.api.listDevices()).devices).toHaveLength(1);
  });

  it("when an account has 10 devices, then the 11th login is 409 TOO_MANY_DEVICES, and removing one makes room", async () => {
    const alice = await account();
    const others: Device[] = [];
    for (let index = 2; index <= 10; index++) others.push(await login(alice, `Device ${index}`));
    expect((await alice.first.api.listDevices()).devices).toHaveLength(10);
    const refused = await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: PASSWORD } });
    expectError(refused, 409, "TOO_MANY_DEVICES");
    await alice.first.api.removeDevice(others[0]!.deviceId);
    const eleventh = await login(alice, "Eleventh");
    expect((await eleventh.api.listDevices()).devices.map((device) => device.name)).toContain("Eleventh");
  });
});

describe("linking a new device", () => {
  it("when the first device approves with the client helpers, then the new device decrypts the account's identity key, and the payload leaves the server", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const laptopSocket = await connectAs(app, alice.first.token);
    const phoneSocket = await connectAs(app, phone.token);
    const phoneHeardRequest = collect(phoneSocket, "device_link_request");
    const requestSeen = nextEvent(laptopSocket, "device_link_request");
    const approved = new Promise<any>((resolve) => phoneSocket.once("device_link_approved", (event: any, ack: () => void) => resolve({ event, ack })));

    const pending = await requestDeviceLink(phone.api);
    expect(pending.requestId).toMatch(/^link_/);
    expect(Date.parse(pending.expiresAt) - app.clock.now().getTime()).toBeGreaterThan(9 * 60_000);
    const request = await requestSeen;
    expect(request).toEqual({ requestId: pending.requestId, deviceId: phone.deviceId, deviceName: "Phone", ephemeralPublicKey: pending.ephemeralPublicKey, expiresAt: pending.expiresAt });
    // Listed for the laptop to answer; not for the phone, which asked.
    expect((await alice.first.api.listLinkRequests()).requests.map((listed) => [listed.requestId, listed.status, listed.approval])).toEqual([[pending.requestId, "pending", null]]);
    expect((await phone.api.listLinkRequests()).requests).toEqual([]);

    const answer = await approveDeviceLink(alice.first.api, request, alice.identity.keys.privateKey);
    expect(answer).toMatchObject({ success: true, requestId: pending.requestId, status: "approved" });
    const { event, ack } = await approved;
    const linked = await pending.complete(event);
    expect(phoneHeardRequest).toEqual([]);

    // The decrypted key is the account's identity key: what it signs verifies with the registered public key.
    expect(linked.publicKeyPem).toBe(alice.identity.publicKeyPem);
    const data = new TextEncoder().encode("signed on the new device");
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, linked.privateKey, data);
    expect(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, alice.identity.keys.publicKey, signature, data)).toBe(true);

    // Acknowledged: the payload is deleted, and GET shows the answer without it.
    ack();
    await waitFor(async () => (await linkRequestDoc(pending.requestId)).get("approval") === null, 5000, "the payload's deletion");
    expect((await linkRequestDoc(pending.requestId)).get("answerOwed")).toBe(false);
    const { request: after } = await phone.api.getLinkRequest(pending.requestId);
    expect(after).toMatchObject({ status: "approved", approval: null, answeredAt: answer.answeredAt });
  });

  it("when the new device was offline, then device_link_approved comes on each connection until acknowledged, and never after", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const pending = await requestDeviceLink(phone.api);
    const [request] = (await alice.first.api.listLinkRequests()).requests;
    await approveDeviceLink(alice.first.api, request!, alice.identity.keys.privateKey);

    for (let attempt = 0; attempt < 2; attempt++) {
      const socket = connect(app, { token: phone.token });
      const event = await nextEvent(socket, "device_link_approved"); // not acknowledged
      expect(event.requestId).toBe(pending.requestId);
      socket.disconnect();
    }
    const socket = connect(app, { token: phone.token });
    const { event, ack } = await new Promise<any>((resolve) => socket.once("device_link_approved", (payload: any, callback: () => void) => resolve({ event: payload, ack: callback })));
    ack();
    await pending.complete(event);
    await waitFor(async () => (await linkRequestDoc(pending.requestId)).get("answerOwed") === false, 5000, "the acknowledgement");
    socket.disconnect();

    const again = await connectAs(app, phone.token);
    const redelivered = collect(again, "device_link_approved");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(redelivered).toEqual([]);
    // Another device of the account never gets it.
    const laptop = await connectAs(app, alice.first.token);
    const toLaptop = collect(laptop, "device_link_approved");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(toLaptop).toEqual([]);
  });

  it("when the new device reads an approval with GET, then it gets the payload once and it is deleted", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const pending = await requestDeviceLink(phone.api);
    await approveDeviceLink(alice.first.api, { requestId: pending.requestId, ephemeralPublicKey: pending.ephemeralPublicKey }, alice.identity.keys.privateKey);
    // The approver never sees the payload it sent back through the API.
    expect((await alice.first.api.getLinkRequest(pending.requestId)).request.approval).toBeNull();

    const linked = await pending.complete(); // from GET
    expect(linked.curve).toBe("P-256");
    const stored = await linkRequestDoc(pending.requestId);
    expect(stored.get("approval")).toBeNull();
    expect(stored.get("answerOwed")).toBe(false);
    await expect(pending.complete()).rejects.toThrow(/already taken/);
    const socket = await connectAs(app, phone.token);
    const owed = collect(socket, "device_link_approved");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(owed).toEqual([]);
  });

  it("when a device rejects, then the new device gets device_link_rejected and the request is answered", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const phoneSocket = await connectAs(app, phone.token);
    const rejected = nextEvent(phoneSocket, "device_link_rejected");
    const pending = await requestDeviceLink(phone.api);
    expect(await alice.first.api.rejectLinkRequest(pending.requestId)).toMatchObject({ success: true, status: "rejected" });
    expect(await rejected).toEqual({ requestId: pending.requestId });
    expect((await phone.api.getLinkRequest(pending.requestId)).request).toMatchObject({ status: "rejected", approval: null });
    await expect(pending.complete()).rejects.toThrow(/rejected/);
  });

  it("when the approval's signature is forged, by another key or over other bytes, then 400 INVALID_SIGNATURE and the request stays pending", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const pending = await requestDeviceLink(phone.api);
    const mallory = await newIdentity();
    const ephemeral = await newEphemeral();
    const good = await signP1363(alice.identity, `${pending.requestId}\n${ephemeral.publicKeyPem}`);
    const flipped = Buffer.from(good, "base64");
    flipped[5] ^= 0xff;
    const body = { ephemeralPublicKey: ephemeral.publicKeyPem, encryptedPayload: "AAAA", iv: "aXZpdml2aXZpdml2", authTag: "dGFndGFndGFndGFndGFn" };
    for (const signature of [
      await signP1363(mallory, `${pending.requestId}\n${ephemeral.publicKeyPem}`),
      await signP1363(alice.identity, ephemeral.publicKeyPem), // the key exchange's signed text, not this one
      flipped.toString("base64"),
    ]) {
      const response = await app.request("POST", `/api/devices/link-requests/${pending.requestId}/approve`, { token: alice.first.token, body: { ...body, signature } });
      expectError(response, 400, "INVALID_SIGNATURE", "signature");
    }
    expect((await alice.first.api.getLinkRequest(pending.requestId)).request.status).toBe("pending");
    // The same body with the right signature is accepted.
    const accepted = await app.request("POST", `/api/devices/link-requests/${pending.requestId}/approve`, { token: alice.first.token, body: { ...body, signature: good } });
    expect(accepted.status).toBe(200);
  });

  it("when another account, or the device that asked, answers or reads a request, then 404, or 403 for the asker", async () => {
    const [alice, bob] = [await account(), await account()];
    const phone = await login(alice, "Phone");
    const pending = await requestDeviceLink(phone.api);
    const ephemeral = await newEphemeral();
    const signedBy = async (who: Identity) => ({
      ephemeralPublicKey: ephemeral.publicKeyPem,
      encryptedPayload: "AAAA",
      iv: "aXZpdml2aXZpdml2",
      authTag: "dGFndGFndGFndGFndGFn",
      signature: await signP1363(who, `${pending.requestId}\n${ephemeral.publicKeyPem}`),
    });
    const path = `/api/devices/link-requests/${pending.requestId}`;
    expectError(await app.request("POST", `${path}/approve`, { token: bob.first.token, body: await signedBy(bob.identity) }), 404, "NOT_FOUND", "requestId");
    expectError(await app.request("POST", `${path}/reject`, { token: bob.first.token }), 404, "NOT_FOUND");
    expectError(await app.request("GET", path, { token: bob.first.token }), 404, "NOT_FOUND");
    expect((await bob.first.api.listLinkRequests()).requests).toEqual([]);
    expectError(await app.request("POST", `${path}/approve`, { token: phone.token, body: await signedBy(alice.identity) }), 403, "FORBIDDEN");
    expectError(await app.request("POST", `${path}/reject`, { token: phone.token }), 403, "FORBIDDEN");
    expectError(await app.request("GET", `/api/devices/link-requests/link_${randomBytes(18).toString("base64url")}`, { token: alice.first.token }), 404, "NOT_FOUND");
    expectError(await app.request("GET", "/api/devices/link-requests/not-an-id", { token: alice.first.token }), 400, "VALIDATION_ERROR", "requestId");
    expect((await alice.first.api.getLinkRequest(pending.requestId)).request.status).toBe("pending");
  });

  it("when a request was answered, then a second answer is 409 LINK_REQUEST_NOT_PENDING", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const tablet = await login(alice, "Tablet");
    const pending = await requestDeviceLink(phone.api);
    await approveDeviceLink(alice.first.api, pending, alice.identity.keys.privateKey);
    const again = await app.request("POST", `/api/devices/link-requests/${pending.requestId}/reject`, { token: tablet.token });
    expectError(again, 409, "LINK_REQUEST_NOT_PENDING");
    expect(again.body.error.details).toMatchObject({ status: "approved" });
    const twice = await approveDeviceLink(alice.first.api, pending, alice.identity.keys.privateKey).catch((error: unknown) => error);
    expect(twice).toMatchObject({ status: 409, code: "LINK_REQUEST_NOT_PENDING" });
  });

  it("when 10 minutes have passed, then answering is 410 LINK_REQUEST_EXPIRED, the request is no longer listed, and an unread payload is deleted", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const late = await requestDeviceLink(phone.api);
    const unread = await requestDeviceLink(phone.api);
    await approveDeviceLink(alice.first.api, unread, alice.identity.keys.privateKey);
    expect((await linkRequestDoc(unread.requestId)).get("approval")).not.toBeNull();

    app.clock.advance(10 * 60_000 + 1000);
    try {
      const response = await app.request("POST", `/api/devices/link-requests/${late.requestId}/reject`, { token: alice.first.token });
      expectError(response, 410, "LINK_REQUEST_EXPIRED");
      expect((await alice.first.api.listLinkRequests()).requests).toEqual([]);
      expect((await phone.api.getLinkRequest(late.requestId)).request.status).toBe("expired");
      // The approved one expired before the new device took its answer: nothing is shown, the payload goes.
      const { request } = await phone.api.getLinkRequest(unread.requestId);
      expect(request).toMatchObject({ status: "expired", approval: null });
      expect((await linkRequestDoc(unread.requestId)).get("approval")).toBeNull();
    } finally {
      app.clock.advance(-(10 * 60_000 + 1000));
    }
  });

  it("when the device that asked was removed, then its request is no longer listed and answering it is 410", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const pending = await requestDeviceLink(phone.api);
    await alice.first.api.removeDevice(phone.deviceId);
    expect((await alice.first.api.listLinkRequests()).requests).toEqual([]);
    const approval = await approveDeviceLink(alice.first.api, pending, alice.identity.keys.privateKey).catch((error: unknown) => error);
    expect(approval).toMatchObject({ status: 410, code: "LINK_REQUEST_EXPIRED" });
    expect((await linkRequestDoc(pending.requestId)).get("approval")).toBeNull();
  });

  it("when the body is malformed, then 400 VALIDATION_ERROR naming the field; a key on another curve than the new device's is refused", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    expectError(await app.request("POST", "/api/devices/link-requests", { token: phone.token, body: { ephemeralPublicKey: "not a key" } }), 400, "VALIDATION_ERROR", "ephemeralPublicKey");
    const pending = await requestDeviceLink(phone.api);
    const p384 = await newEphemeral("P-384");
    const body = {
      ephemeralPublicKey: p384.publicKeyPem,
      encryptedPayload: "AAAA",
      iv: "aXZpdml2aXZpdml2",
      authTag: "dGFndGFndGFndGFndGFn",
      signature: await signP1363(alice.identity, `${pending.requestId}\n${p384.publicKeyPem}`),
    };
    const path = `/api/devices/link-requests/${pending.requestId}/approve`;
    expectError(await app.request("POST", path, { token: alice.first.token, body }), 400, "VALIDATION_ERROR", "ephemeralPublicKey");
    expectError(await app.request("POST", path, { token: alice.first.token, body: { ...body, encryptedPayload: "A".repeat(64 * 1024 + 4) } }), 400, "VALIDATION_ERROR", "encryptedPayload");
    expectError(await app.request("POST", path, { token: alice.first.token, body: { ...body, iv: "not base64!" } }), 400, "VALIDATION_ERROR", "iv");
  });
});

describe("with two relay instances", () => {
  let other: TestApp;
  beforeAll(async () => {
    other = await startTestApp({ LOGIN_ACCOUNT_LIMIT: "1000" }, { projectId: app.projectId, relay: {} });
  });
  afterAll(async () => {
    await other?.close();
  });

  it("when the new device is on the other instance, then the approval reaches it there and its removal disconnects it there", async () => {
    const alice = await account();
    const phone = await login(alice, "Phone");
    const phoneSocket = await connectAs(other, phone.token);
    const laptopSocket = await connectAs(app, alice.first.token);
    const requestSeen = nextEvent(laptopSocket, "device_link_request");
    const approved = nextEvent(phoneSocket, "device_link_approved");

    const pending = await requestDeviceLink(apiClient(other, phone.token));
    await approveDeviceLink(alice.first.api, await requestSeen, alice.identity.keys.privateKey);
    const linked = await pending.complete(await approved);
    expect(linked.publicKeyPem).toBe(alice.identity.publicKeyPem);

    const ended = nextEvent(phoneSocket, "auth_error");
    await alice.first.api.removeDevice(phone.deviceId);
    expect((await ended).code).toBe("UNAUTHORIZED");
    expectError(await other.request("GET", "/api/devices", { token: phone.token }), 401);
    expect(laptopSocket.connected).toBe(true);
  });
});
