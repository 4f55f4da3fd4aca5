import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ENCRYPTED_CONTENT_LENGTH } from "../functions/src/messages/schema";
import { MAX_CLIENT_TIMESTAMP_AGE_MS, NONCE_RETENTION_MS } from "../functions/src/messages/send-decision";
import { newId } from "../functions/src/shared/ids";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { messageBody, sendMessage } from "./support/messages";

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.close();
});

async function pair(): Promise<[RegisteredUser, RegisteredUser]> {
  return Promise.all([registerUser(app), registerUser(app)]);
}

async function history(user: RegisteredUser, contact: RegisteredUser, query = "") {
  return app.request("GET", `/api/messages/${contact.id}${query}`, { token: user.token });
}

describe("POST /api/messages/send", () => {
  it("when a valid message is sent, then 201 with the guide's fields and the full record, byte for byte", async () => {
    const [alice, bob] = await pair();
    const body = messageBody(bob.id, {
      // Bytes whose base64 has "+", "/" and "=" padding: all must survive untouched.
      encryptedContent: Buffer.from([0xfb, 0xff, 0xbf, 0xfe, 0xfa, 0x00, 0x3e, 0x3f]).toString("base64"),
      iv: Buffer.from([0xff, 0xfe, 0xfd, 0xfb]).toString("base64"),
      timestamp: new Date(Date.now() - 1000).toISOString(),
    });
    expect(body.encryptedContent).toMatch(/\+.*\/.*=$|\/.*\+.*=$/);
    const response = await app.request("POST", "/api/messages/send", { token: alice.token, body });
    expect(response.status).toBe(201);
    const { message } = response.body;
    expect(response.body).toMatchObject({ success: true, messageId: message.id, timestamp: message.timestamp, sequenceNumber: 1 });
    expect(message).toEqual({
      id: expect.stringMatching(/^msg_[A-Za-z0-9_-]{20,}$/),
      messageId: message.id,
      senderId: alice.id,
      receiverId: bob.id,
      encryptedContent: body.encryptedContent,
      iv: body.iv,
      authTag: body.authTag,
      nonce: body.nonce,
      signature: body.signature,
      messageType: "text",
      sequenceNumber: 1,
      timestamp: expect.any(String),
      clientTimestamp: body.timestamp,
    });
    expect(new Date(message.timestamp).toISOString()).toBe(message.timestamp);
    // The receiver's history shows the very same record.
    const seen = await history(bob, alice);
    expect(seen.body.messages).toEqual([message]);
  });

  it("when the body names a senderId, then the sender is still the token's user", async () => {
    const [alice, bob] = await pair();
    const mallory = await registerUser(app);
    const response = await sendMessage(app, mallory, bob, { senderId: alice.id });
    expect(response.status).toBe(201);
    expect(response.body.message.senderId).toBe(mallory.id);
    expect((await history(bob, alice)).body.total).toBe(0);
  });

  it("when encryptedContent is exactly 96 KiB, then it is stored whole; one more character is 413", async () => {
    const [alice, bob] = await pair();
    const largest = "A".repeat(MAX_ENCRYPTED_CONTENT_LENGTH - 2) + "==";
    const ok = await sendMessage(app, alice, bob, { encryptedContent: largest });
    expect(ok.status).toBe(201);
    expect(ok.body.message.encryptedContent).toBe(largest);
    const tooLarge = await sendMessage(app, alice, bob, { encryptedContent: largest + "A" });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", details: { field: "encryptedContent" } });
  });

  it.each([
    ["receiverId", { receiverId: undefined }],
    ["receiverId", { receiverId: "user_456" }],
    ["receiverId", { receiverId: "users/../x" }],
    ["encryptedContent", { encryptedContent: "" }],
    ["encryptedContent", { encryptedContent: 42 }],
    ["encryptedContent", { encryptedContent: "not base64!" }],
    ["iv", { iv: undefined }],
    ["iv", { iv: "A".repeat(65) }],
    ["authTag", { authTag: null }],
    ["nonce", { nonce: ["a"] }],
    ["nonce", { nonce: "A".repeat(129) }],
    ["signature", { signature: "A".repeat(1025) }],
    ["timestamp", { timestamp: "yesterday" }],
    ["timestamp", { timestamp: "2025-12-03" }],
    ["timestamp", { timestamp: 1733220000000 }],
    ["messageType", { messageType: "<script>" }],
    ["sequenceNumber", { sequenceNumber: 0 }],
    ["sequenceNumber", { sequenceNumber: 1.5 }],
    ["sequenceNumber", { sequenceNumber: "3" }],
    ["sequenceNumber", { sequenceNumber: 2 ** 60 }],
  ])("when %s is invalid (%j), then 400 VALIDATION_ERROR naming it and nothing is stored", async (field, override) => {
    const [alice, bob] = await pair();
    const response = await sendMessage(app, alice, bob, override);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR", details: { field } } });
    expect((await history(alice, bob)).body.total).toBe(0);
  });

  it("when the receiver does not exist, then 404; when it is yourself, then 400", async () => {
    const [alice] = await pair();
    const unknown = await app.request("POST", "/api/messages/send", { token: alice.token, body: messageBody(newId("user")) });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "NOT_FOUND", details: { field: "receiverId" } });
    const self = await app.request("POST", "/api/messages/send", { token: alice.token, body: messageBody(alice.id) });
    expect(self.status).toBe(400);
  });

  it("when there is no token, then 401 and nothing is stored", async () => {
    const [alice, bob] = await pair();
    const response = await app.request("POST", "/api/messages/send", { body: messageBody(bob.id) });
    expect(response.status).toBe(401);
    expect((await history(alice, bob)).body.total).toBe(0);
  });
});

describe("sequencing", () => {
  it("when sequenceNumber is absent, then the server assigns 1, 2, 3 per ordered pair", async () => {
    const [alice, bob] = await pair();
    const numbers: number[] = [];
    for (let i = 0; i < 3; i++) numbers.push((await sendMessage(app, alice, bob)).body.sequenceNumber);
    numbers.push((await sendMessage(app, bob, alice)).body.sequenceNumber);
    expect(numbers).toEqual([1, 2, 3, 1]);
  });

  it("when a greater sequenceNumber is sent, then it is stored as sent and the counter continues from it", async () => {
    const [alice, bob] = await pair();
    expect((await sendMessage(app, alice, bob, { sequenceNumber: 10 })).body.sequenceNumber).toBe(10);
    expect((await sendMessage(app, alice, bob)).body.sequenceNumber).toBe(11);
  });

  it("when an equal or lower sequenceNumber is sent, then 409 REPLAY_DETECTED and nothing is stored", async () => {
    const [alice, bob] = await pair();
    await sendMessage(app, alice, bob, { sequenceNumber: 5 });
    for (const sequenceNumber of [5, 4, 1]) {
      const response = await sendMessage(app, alice, bob, { sequenceNumber });
      expect(response.status).toBe(409);
      expect(response.body.error).toMatchObject({ code: "REPLAY_DETECTED", details: { field: "sequenceNumber" } });
    }
    const page = await history(alice, bob);
    expect(page.body.total).toBe(1);
    // A rejected send leaves its nonce unused: the same nonce then goes through.
    expect((await sendMessage(app, alice, bob, { sequenceNumber: 6 })).status).toBe(201);
  });

  it("when 40 sends on one pair run concurrently, then they get 1..40, none lost, none repeated", async () => {
    const [alice, bob] = await pair();
    const responses = await Promise.all(Array.from({ length: 40 }, () => sendMessage(app, alice, bob)));
    expect(responses.map((r) => r.status)).toEqual(Array(40).fill(201));
    const numbers = responses.map((r) => r.body.sequenceNumber).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const stored = await history(bob, alice, "?limit=100");
    expect(stored.body.total).toBe(40);
    expect(stored.body.messages.map((m: { sequenceNumber: number }) => m.sequenceNumber)).toEqual(numbers);
  });

  it("when the Admin SDK retries a transaction that had already committed, then the message is stored once", async () => {
    const [alice, bob] = await pair();
    const draft = { messageId: newId("msg"), senderId: alice.id, sent: messageBody(bob.id) };
    const terms = { now: () => new Date(), rate: { burst: 60, refillPerSecond: 1 } };
    const first = await app.services.messages.append(draft, terms);
    const retried = await app.services.messages.append(draft, terms);
    expect(retried.record).toEqual(first.record);
    expect(retried.duplicate).toBe(false);
    expect((await history(alice, bob)).body.total).toBe(1);
  });
});

describe("sequence bounds", () => {
  it("when sequenceNumber is 2^53-1, then 400 naming the pair's last number, and the pair goes on counting", async () => {
    const [alice, bob] = await pair();
    expect((await sendMessage(app, alice, bob)).body.sequenceNumber).toBe(1);
    const refused = await sendMessage(app, alice, bob, { sequenceNumber: Number.MAX_SAFE_INTEGER });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "sequenceNumber", lastSequenceNumber: 1 } });
    // Before the bound, this let one more send through and every later one of the pair failed.
    for (const expected of [2, 3]) {
      const next = await sendMessage(app, alice, bob);
      expect(next.status).toBe(201);
      expect(next.body.sequenceNumber).toBe(expected);
    }
    expect((await history(alice, bob)).body.total).toBe(3);
  });

  it.each([
    ["2^31", 2 ** 31],
    ["2^60", 2 ** 60],
    ["0", 0],
    ["-1", -1],
  ])("when sequenceNumber is %s, then 400 with lastSequenceNumber and nothing is stored", async (_label, sequenceNumber) => {
    const [alice, bob] = await pair();
    await sendMessage(app, alice, bob, { sequenceNumber: 7 });
    const refused = await sendMessage(app, alice, bob, { sequenceNumber });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "sequenceNumber", lastSequenceNumber: 7 } });
    expect((await history(alice, bob)).body.total).toBe(1);
  });

  it("when sequenceNumber is more than 1000 past the pair's last, then 400; exactly 1000 past is stored, and the counter continues", async () => {
    const [alice, bob] = await pair();
    await sendMessage(app, alice, bob, { sequenceNumber: 5 });
    for (const sequenceNumber of [1006, 2 ** 31 - 1]) {
      const refused = await sendMessage(app, alice, bob, { sequenceNumber });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { field: "sequenceNumber", lastSequenceNumber: 5 } });
    }
    const farthest = await sendMessage(app, alice, bob, { sequenceNumber: 1005 });
    expect(farthest.status).toBe(201);
    expect(farthest.body.sequenceNumber).toBe(1005);
    expect((await sendMessage(app, alice, bob)).body.sequenceNumber).toBe(1006);
    expect((await sendMessage(app, alice, bob, { sequenceNumber: 2006 })).status).toBe(201);
    expect((await history(alice, bob)).body.total).toBe(4);
  });
});

describe("retries", () => {
  it("when a send is retried with the same nonce and content, then 200 with the original answer plus duplicate: true, and one message is stored", async () => {
    const [alice, bob] = await pair();
    for (const overrides of [{}, { sequenceNumber: 40 }]) {
      const body = messageBody(bob.id, overrides);
      const first = await app.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(first.status).toBe(201);
      expect(first.body.duplicate).toBeUndefined();
      for (let attempt = 0; attempt < 2; attempt++) {
        const retry = await app.request("POST", "/api/messages/send", { token: alice.token, body });
        expect(retry.status).toBe(200);
        expect(retry.body).toEqual({ ...first.body, duplicate: true });
      }
    }
    const page = await history(bob, alice);
    expect(page.body.total).toBe(2);
    expect(page.body.messages.map((m: { sequenceNumber: number }) => m.sequenceNumber)).toEqual([1, 40]);
  });

  it("when a retry leaves out the sequenceNumber the original named, then it is still a retry", async () => {
    const [alice, bob] = await pair();
    const withoutNumber = messageBody(bob.id);
    const first = await app.request("POST", "/api/messages/send", { token: alice.token, body: { ...withoutNumber, sequenceNumber: 3 } });
    expect(first.body.sequenceNumber).toBe(3);
    const retry = await app.request("POST", "/api/messages/send", { token: alice.token, body: withoutNumber });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ ...first.body, duplicate: true });
  });

  it.each([
    ["encryptedContent", { encryptedContent: "b3RoZXI=" }],
    ["iv", { iv: "b3RoZXI=" }],
    ["authTag", { authTag: "b3RoZXI=" }],
    ["signature", { signature: "b3RoZXI=" }],
    ["messageType", { messageType: "image" }],
    ["timestamp", { timestamp: new Date(Date.now() - 1000).toISOString() }],
    ["sequenceNumber", { sequenceNumber: 9 }],
  ])("when a used nonce comes with another %s, then 409 REPLAY_DETECTED and nothing is stored", async (_field, change) => {
    const [alice, bob] = await pair();
    const body = messageBody(bob.id, { sequenceNumber: 8 });
    expect((await app.request("POST", "/api/messages/send", { token: alice.token, body })).status).toBe(201);
    const replay = await app.request("POST", "/api/messages/send", { token: alice.token, body: { ...body, ...change } });
    expect(replay.status).toBe(409);
    expect(replay.body.error).toMatchObject({ code: "REPLAY_DETECTED", details: { field: "nonce" } });
    expect((await history(alice, bob)).body.total).toBe(1);
  });

  /** Alice has sent Bob a message (its nonce is now used); a third user stands by. */
  async function aliceHasSentToBob() {
    const [alice, bob] = await pair();
    const third = await registerUser(app);
    const body = messageBody(bob.id);
    await app.request("POST", "/api/messages/send", { token: alice.token, body });
    return { alice, third, body };
  }

  it("when a used nonce is sent to another receiver, then 409 REPLAY_DETECTED", async () => {
    const { alice, third: carol, body } = await aliceHasSentToBob();
    const elsewhere = await app.request("POST", "/api/messages/send", { token: alice.token, body: { ...body, receiverId: carol.id } });
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.error.code).toBe("REPLAY_DETECTED");
    expect((await history(alice, carol)).body.total).toBe(0);
  });

  it("when another user sends the same body with the same nonce, then it is their own new message, not a retry", async () => {
    const { third: mallory, body } = await aliceHasSentToBob();
    const copied = await app.request("POST", "/api/messages/send", { token: mallory.token, body });
    expect(copied.status).toBe(201);
    expect(copied.body.duplicate).toBeUndefined();
    expect(copied.body.message.senderId).toBe(mallory.id);
  });

  it("when retries come while the pair's rate is used up, then they are answered and take nothing from it", async () => {
    const limited = await startTestApp({ SEND_RATE_BURST: "2", SEND_RATE_PER_SECOND: "0.01" });
    try {
      const [alice, bob] = await Promise.all([registerUser(limited), registerUser(limited)]);
      const body = messageBody(bob.id);
      const first = await limited.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(first.status).toBe(201);
      for (let attempt = 0; attempt < 3; attempt++) {
        expect((await limited.request("POST", "/api/messages/send", { token: alice.token, body })).status).toBe(200);
      }
      // Three retries later, the second of the burst's two tokens is still there.
      expect((await sendMessage(limited, alice, bob)).status).toBe(201);
      expect((await sendMessage(limited, alice, bob)).status).toBe(429);
      const retry = await limited.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual({ ...first.body, duplicate: true });
      expect((await limited.request("GET", `/api/messages/${bob.id}`, { token: alice.token })).body.total).toBe(2);
    } finally {
      await limited.close();
    }
  });

  it("when a retry comes after its timestamp left the 5-minute window, then it is answered while the nonce is remembered (15 minutes), then STALE_TIMESTAMP", async () => {
    const timed = await startTestApp({ ACCESS_TOKEN_TTL_SECONDS: "7200" });
    try {
      const [alice, bob] = await Promise.all([registerUser(timed), registerUser(timed)]);
      const body = messageBody(bob.id, { timestamp: timed.clock.now().toISOString() });
      const first = await timed.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(first.status).toBe(201);
      timed.clock.advance(MAX_CLIENT_TIMESTAMP_AGE_MS + 60_000);
      const late = await timed.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(late.status).toBe(200);
      expect(late.body).toEqual({ ...first.body, duplicate: true });
      // The same nonce with other content, or a new message, is still too old.
      for (const stale of [{ ...body, encryptedContent: "b3RoZXI=" }, { ...body, nonce: "bmV3LW5vbmNl" }]) {
        const refused = await timed.request("POST", "/api/messages/send", { token: alice.token, body: stale });
        expect(refused.status).toBe(400);
        expect(refused.body.error).toMatchObject({ code: "STALE_TIMESTAMP", details: { field: "timestamp" } });
      }
      timed.clock.advance(NONCE_RETENTION_MS);
      const forgotten = await timed.request("POST", "/api/messages/send", { token: alice.token, body });
      expect(forgotten.status).toBe(400);
      expect(forgotten.body.error.code).toBe("STALE_TIMESTAMP");
      expect((await timed.request("GET", `/api/messages/${bob.id}`, { token: alice.token })).body.total).toBe(1);
    } finally {
      await timed.close();
    }
  });

  it("when the session has ended, then a retry is refused like any send", async () => {
    const [alice, bob] = await pair();
    const body = messageBody(bob.id);
    await app.request("POST", "/api/messages/send", { token: alice.token, body });
    await app.request("POST", "/api/auth/logout", { token: alice.token });
    const retry = await app.request("POST", "/api/messages/send", { token: alice.token, body });
    expect(retry.status).toBe(401);
  });
});

describe("replay and clock checks", () => {
  it("when a nonce is reused by the same sender, then 409 REPLAY_DETECTED and nothing is stored", async () => {
    const [alice, bob] = await pair();
    const first = await sendMessage(app, alice, bob, { nonce: "c2FtZS1ub25jZQ==" });
    expect(first.status).toBe(201);
    const replay = await sendMessage(app, alice, bob, { nonce: "c2FtZS1ub25jZQ==" });
    expect(replay.status).toBe(409);
    expect(replay.body.error).toMatchObject({ code: "REPLAY_DETECTED", details: { field: "nonce" } });
    expect((await history(alice, bob)).body.total).toBe(1);
    // Nonces are per sender: Bob may use the same bytes.
    expect((await sendMessage(app, bob, alice, { nonce: "c2FtZS1ub25jZQ==" })).status).toBe(201);
  });

  it.each([
    ["older than 5 minutes", -5 * 60_000 - 5_000],
    ["more than 60 s ahead", 65_000],
  ])("when the client timestamp is %s, then 400 STALE_TIMESTAMP and nothing is stored", async (_label, skewMs) => {
    const [alice, bob] = await pair();
    const response = await sendMessage(app, alice, bob, { timestamp: new Date(Date.now() + skewMs).toISOString() });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: "STALE_TIMESTAMP", details: { field: "timestamp" } });
    expect((await history(alice, bob)).body.total).toBe(0);
  });

  it("when the client timestamp is within the window, then it is kept as clientTimestamp and timestamp is server time", async () => {
    const [alice, bob] = await pair();
    const clientTimestamp = new Date(Date.now() - 4 * 60_000).toISOString();
    const response = await sendMessage(app, alice, bob, { timestamp: clientTimestamp });
    expect(response.status).toBe(201);
    expect(response.body.message.clientTimestamp).toBe(clientTimestamp);
    expect(Math.abs(Date.parse(response.body.timestamp) - Date.now())).toBeLessThan(10_000);
  });
});

describe("GET /api/messages/:contactId", () => {
  let alice: RegisteredUser;
  let bob: RegisteredUser;
  const sent: string[] = [];

  beforeAll(async () => {
    [alice, bob] = await pair();
    // 7 messages alternating direction, in a known order.
    for (let i = 0; i < 7; i++) {
      const response = i % 2 === 0 ? await sendMessage(app, alice, bob) : await sendMessage(app, bob, alice);
      sent.push(response.body.messageId);
    }
  });

  it("when both sides ask, then each sees both directions in ascending time, with total and hasMore", async () => {
    for (const [me, them] of [[alice, bob], [bob, alice]] as const) {
      const page = await history(me, them);
      expect(page.status).toBe(200);
      expect(page.body).toMatchObject({ success: true, total: 7, hasMore: false });
      expect(page.body.messages.map((m: { id: string }) => m.id)).toEqual(sent);
    }
  });

  it("when paging with limit and before, then pages go newest first, each ascending, and meet without gaps", async () => {
    const first = await history(alice, bob, "?limit=3");
    expect(first.body.messages.map((m: { id: string }) => m.id)).toEqual(sent.slice(4));
    expect(first.body).toMatchObject({ hasMore: true, total: 7 });
    const second = await history(alice, bob, `?limit=3&before=${first.body.messages[0].id}`);
    expect(second.body.messages.map((m: { id: string }) => m.id)).toEqual(sent.slice(1, 4));
    expect(second.body.hasMore).toBe(true);
    const third = await history(alice, bob, `?limit=3&before=${second.body.messages[0].id}`);
    expect(third.body.messages.map((m: { id: string }) => m.id)).toEqual(sent.slice(0, 1));
    expect(third.body.hasMore).toBe(false);
  });

  it("when offset is given, then that many newest messages are skipped", async () => {
    const page = await history(alice, bob, "?limit=2&offset=2");
    expect(page.body.messages.map((m: { id: string }) => m.id)).toEqual(sent.slice(3, 5));
  });

  it.each(["?limit=0", "?limit=101", "?limit=abc", "?offset=-1", "?before=nope", "?limit=1&limit=2"])(
    "when the query is %s, then 400 VALIDATION_ERROR",
    async (query) => {
      const page = await history(alice, bob, query);
      expect(page.status).toBe(400);
      expect(page.body.error.code).toBe("VALIDATION_ERROR");
    },
  );

  it("when limit is absent, then 50 messages come back at most", async () => {
    const [carol, dave] = await pair();
    await Promise.all(Array.from({ length: 55 }, () => sendMessage(app, carol, dave)));
    const page = await history(dave, carol);
    expect(page.body.messages).toHaveLength(50);
    expect(page.body).toMatchObject({ total: 55, hasMore: true });
    expect(page.body.messages.map((m: { sequenceNumber: number }) => m.sequenceNumber)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 6),
    );
  });

  it("when a third user asks, then they see nothing of the conversation, not even through a cursor", async () => {
    const eve = await registerUser(app);
    const aboutBob = await history(eve, bob);
    expect(aboutBob.body).toMatchObject({ messages: [], total: 0, hasMore: false });
    const withCursor = await history(eve, bob, `?before=${sent[3]}`);
    expect(withCursor.status).toBe(404);
    expect(JSON.stringify(withCursor.body)).not.toContain(alice.id);
  });

  it("when the contact id is malformed, then 400", async () => {
    const page = await app.request("GET", "/api/messages/..%2Fusers", { token: alice.token });
    expect(page.status).toBe(400);
  });
});

describe("per-pair send rate limit", () => {
  it("when a pair exceeds its burst, then 429 RATE_LIMITED with Retry-After and RateLimit-* and other pairs go on", async () => {
    const limited = await startTestApp({ SEND_RATE_BURST: "3", SEND_RATE_PER_SECOND: "0.5" });
    try {
      const [alice, bob, carol] = await Promise.all([registerUser(limited), registerUser(limited), registerUser(limited)]);
      for (let i = 0; i < 3; i++) {
        const ok = await sendMessage(limited, alice, bob);
        expect(ok.status).toBe(201);
        expect(ok.headers.get("ratelimit-limit")).toBe("3");
      }
      const refused = await sendMessage(limited, alice, bob);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe("RATE_LIMITED");
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(refused.headers.get("ratelimit-remaining")).toBe("0");
      expect((await sendMessage(limited, alice, carol)).status).toBe(201);
      expect((await sendMessage(limited, bob, alice)).status).toBe(201);
      const page = await limited.request("GET", `/api/messages/${bob.id}`, { token: alice.token });
      expect(page.body.total).toBe(4);
    } finally {
      await limited.close();
    }
  });
});
