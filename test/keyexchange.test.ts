import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../functions/src/shared/ids";
import { startTestApp, type TestApp } from "./support/app";
import { initiate, person, respond } from "./support/key-exchange";
import { closeAllSockets, collect, connectAs, nextEvent, waitFor } from "./support/sockets";
import { decrypt, deriveSessionKey, encrypt, newEphemeral, newIdentity, signP1363 } from "./support/webcrypto";

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({}, { relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await app.close();
});

describe("signatures", () => {
  it.each([
    ["P-256", "P1363", false],
    ["P-256", "DER", true],
    ["P-384", "P1363", false],
    ["P-384", "DER", true],
  ] as const)("when the identity key is %s and the signature %s, then initiate and respond are accepted", async (curve, _encoding, der) => {
    const [alice, bob] = [await person(app, curve), await person(app, curve)];
    const { response } = await initiate(app, alice, bob, { curve, der });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ success: true, exchangeId: expect.stringMatching(/^exchange_/), status: "pending" });
    const answer = await respond(app, bob, response.body.exchangeId, { curve, der });
    expect(answer.response.status).toBe(200);
    expect(answer.response.body).toMatchObject({ success: true, confirmed: true, status: "completed" });
  });

  it("when the signature is forged, truncated, by another key, over other bytes or not base64, then 400 INVALID_SIGNATURE and nothing is stored", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const mallory = await newIdentity();
    const ephemeral = await newEphemeral();
    const good = await signP1363(alice.identity, ephemeral.publicKeyPem);
    const flipped = Buffer.from(good, "base64");
    flipped[10] ^= 0xff;
    const bad = [
      flipped.toString("base64"),
      Buffer.from(good, "base64").subarray(0, 40).toString("base64"),
      await signP1363(mallory, ephemeral.publicKeyPem),
      await signP1363(alice.identity, ephemeral.publicKeyPem.trimEnd()),
      Buffer.alloc(64).toString("base64"),
      randomBytes(72).toString("base64"),
      "not base64 at all!",
    ];
    for (const signature of bad) {
      const response = await app.request("POST", "/api/keyexchange/initiate", {
        token: alice.token,
        body: { targetUserId: bob.id, ephemeralPublicKey: ephemeral.publicKeyPem, signature },
      });
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ code: "INVALID_SIGNATURE", details: { field: "signature" } });
    }
    const pending = await app.request("GET", "/api/keyexchange/pending", { token: bob.token });
    expect(pending.body.incoming).toEqual([]);
  });

  it("when the responder's signature does not verify, then 400 INVALID_SIGNATURE and the exchange stays pending", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const { response } = await initiate(app, alice, bob);
    const forged = await respond(app, bob, response.body.exchangeId, { signature: await signP1363(alice.identity, "something else") });
    expect(forged.response.status).toBe(400);
    expect(forged.response.body.error.code).toBe("INVALID_SIGNATURE");
    const state = await app.request("GET", `/api/keyexchange/${response.body.exchangeId}`, { token: alice.token });
    expect(state.body.exchange.status).toBe("pending");
  });

  it("when the ephemeral key is not a PEM SPKI EC key, or the response is on another curve, then 400 naming ephemeralPublicKey", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    for (const ephemeralPublicKey of ["garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 42]) {
      const response = await app.request("POST", "/api/keyexchange/initiate", {
        token: alice.token,
        body: { targetUserId: bob.id, ephemeralPublicKey, signature: "AAAA" },
      });
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "ephemeralPublicKey" } });
    }
    const { response } = await initiate(app, alice, bob, { curve: "P-256" });
    const otherCurve = await respond(app, bob, response.body.exchangeId, { curve: "P-384" });
    expect(otherCurve.response.status).toBe(400);
    expect(otherCurve.response.body.error.details.field).toBe("ephemeralPublicKey");
  });
});

describe("state rules", () => {
  it("when someone other than the target responds, then the initiator gets 403 and a stranger 404", async () => {
    const [alice, bob, eve] = [await person(app), await person(app), await person(app)];
    const { response } = await initiate(app, alice, bob);
    expect((await respond(app, alice, response.body.exchangeId)).response.status).toBe(403);
    const stranger = await respond(app, eve, response.body.exchangeId);
    expect(stranger.response.status).toBe(404);
    const peek = await app.request("GET", `/api/keyexchange/${response.body.exchangeId}`, { token: eve.token });
    expect(peek.status).toBe(404);
    expect(JSON.stringify(peek.body)).not.toContain(alice.id);
  });

  it("when the target responds twice, then the second is 409 EXCHANGE_NOT_PENDING", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const { response } = await initiate(app, alice, bob);
    expect((await respond(app, bob, response.body.exchangeId)).response.status).toBe(200);
    const again = await respond(app, bob, response.body.exchangeId);
    expect(again.response.status).toBe(409);
    expect(again.response.body.error).toMatchObject({ code: "EXCHANGE_NOT_PENDING", details: { status: "completed" } });
  });

  it("when the exchange is unknown or malformed, then 404 / 400", async () => {
    const bob = await person(app);
    expect((await respond(app, bob, newId("exchange"))).response.status).toBe(404);
    expect((await respond(app, bob, "exchange_../../x")).response.status).toBe(400);
    expect((await app.request("GET", "/api/keyexchange/nope", { token: bob.token })).status).toBe(400);
  });

  it("when the exchange is past its expiry, then it says expired and responding is 410 EXCHANGE_EXPIRED", async () => {
    const short = await startTestApp({ KEY_EXCHANGE_TTL_SECONDS: "60" });
    try {
      const alice = { ...(await person(short)) };
      const bob = { ...(await person(short)) };
      const ephemeral = await newEphemeral();
      const created = await short.request("POST", "/api/keyexchange/initiate", {
        token: alice.token,
        body: { targetUserId: bob.id, ephemeralPublicKey: ephemeral.publicKeyPem, signature: await signP1363(alice.identity, ephemeral.publicKeyPem) },
      });
      short.clock.advance(61_000);
      const state = await short.request("GET", `/api/keyexchange/${created.body.exchangeId}`, { token: bob.token });
      expect(state.body.exchange.status).toBe("expired");
      const late = await newEphemeral();
      const answer = await short.request("POST", "/api/keyexchange/respond", {
        token: bob.token,
        body: { exchangeId: created.body.exchangeId, ephemeralPublicKey: late.publicKeyPem, signature: await signP1363(bob.identity, late.publicKeyPem) },
      });
      expect(answer.status).toBe(410);
      expect(answer.body.error.code).toBe("EXCHANGE_EXPIRED");
      expect((await short.request("GET", "/api/keyexchange/pending", { token: bob.token })).body.incoming).toEqual([]);
    } finally {
      await short.close();
    }
  });

  it("when a new exchange starts between the same pair, then older pending ones are superseded", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const first = await initiate(app, alice, bob);
    const second = await initiate(app, bob, alice);
    const old = await app.request("GET", `/api/keyexchange/${first.response.body.exchangeId}`, { token: alice.token });
    expect(old.body.exchange.status).toBe("superseded");
    const late = await respond(app, bob, first.response.body.exchangeId);
    expect(late.response.status).toBe(409);
    const pending = await app.request("GET", "/api/keyexchange/pending", { token: alice.token });
    expect(pending.body.incoming.map((e: { exchangeId: string }) => e.exchangeId)).toEqual([second.response.body.exchangeId]);
    expect(pending.body.outgoing).toEqual([]);
  });

  it("when listing and reading, then participants see both keys, signatures, status and times", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const { response, ephemeral } = await initiate(app, alice, bob);
    const mine = await app.request("GET", "/api/keyexchange/pending", { token: alice.token });
    expect(mine.body.outgoing).toHaveLength(1);
    expect(mine.body.outgoing[0]).toMatchObject({ exchangeId: response.body.exchangeId, initiatorEphemeralPublicKey: ephemeral.publicKeyPem });
    const answer = await respond(app, bob, response.body.exchangeId);
    const state = await app.request("GET", `/api/keyexchange/${response.body.exchangeId}`, { token: alice.token });
    expect(state.body.exchange).toMatchObject({
      exchangeId: response.body.exchangeId,
      initiatorId: alice.id,
      targetId: bob.id,
      status: "completed",
      initiatorEphemeralPublicKey: ephemeral.publicKeyPem,
      targetEphemeralPublicKey: answer.ephemeral.publicKeyPem,
      initiatorSignature: expect.any(String),
      targetSignature: expect.any(String),
      createdAt: expect.any(String),
      completedAt: expect.any(String),
    });
  });
});

describe("realtime and the full run", () => {
  it("when the target was offline, then key_exchange_request arrives on connect, once; the response reaches the initiator", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const { response, ephemeral } = await initiate(app, alice, bob);
    const aliceSocket = await connectAs(app, alice.token);
    const bobSocket = await connectAs(app, bob.token, {});
    const requests = collect(bobSocket, "key_exchange_request");
    await waitFor(() => requests.length === 1, 10_000, "request on connect");
    expect(requests[0]).toMatchObject({
      exchangeId: response.body.exchangeId,
      fromUserId: alice.id,
      ephemeralPublicKey: ephemeral.publicKeyPem,
      signature: expect.any(String),
    });
    const responseEvent = nextEvent(aliceSocket, "key_exchange_response");
    const answer = await respond(app, bob, response.body.exchangeId);
    expect(await responseEvent).toMatchObject({
      exchangeId: response.body.exchangeId,
      fromUserId: bob.id,
      ephemeralPublicKey: answer.ephemeral.publicKeyPem,
      status: "completed",
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(requests).toHaveLength(1);
  });

  it("when a request is acknowledged, then it is not sent again on the next connection; unacknowledged it is", async () => {
    const [alice, bob] = [await person(app), await person(app)];
    const { response } = await initiate(app, alice, bob);
    const first = await connectAs(app, bob.token);
    await nextEvent(first, "key_exchange_request");
    first.disconnect();
    const second = await connectAs(app, bob.token);
    const [, ack] = await new Promise<[unknown, () => void]>((resolve) => second.once("key_exchange_request", (payload, callback) => resolve([payload, callback])));
    ack();
    await waitFor(async () => (await app.db.collection("keyExchanges").doc(response.body.exchangeId).get()).get("requestDeliveredAt") !== null);
    second.disconnect();
    const third = await connectAs(app, bob.token);
    const seen = collect(third, "key_exchange_request");
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(seen).toEqual([]);
  });

  it("when both sides complete the exchange like browsers, then they derive the same AES-GCM key and a message decrypts", async () => {
    const [alice, bob] = [await person(app), await person(app, "P-384")];
    const aliceSocket = await connectAs(app, alice.token);
    const bobSocket = await connectAs(app, bob.token);

    const request = nextEvent(bobSocket, "key_exchange_request");
    const { response, ephemeral: aliceEphemeral } = await initiate(app, alice, bob);
    const incoming = await request;
    const replied = nextEvent(aliceSocket, "key_exchange_response");
    const { ephemeral: bobEphemeral } = await respond(app, bob, incoming.exchangeId);
    const reply = await replied;
    expect(reply.exchangeId).toBe(response.body.exchangeId);

    const aliceKey = await deriveSessionKey(aliceEphemeral, reply.ephemeralPublicKey);
    const bobKey = await deriveSessionKey(bobEphemeral, incoming.ephemeralPublicKey);

    const sealed = await encrypt(aliceKey, "hello Bob, only you can read this");
    const delivered = nextEvent(bobSocket, "message_received");
    const sent = await app.request("POST", "/api/messages/send", {
      token: alice.token,
      body: { receiverId: bob.id, ...sealed, nonce: randomBytes(16).toString("base64"), timestamp: new Date().toISOString(), signature: randomBytes(64).toString("base64") },
    });
    expect(sent.status).toBe(201);
    const message = await delivered;
    expect(message.encryptedContent).toBe(sealed.encryptedContent);
    expect(await decrypt(bobKey, message)).toBe("hello Bob, only you can read this");
  });
});
