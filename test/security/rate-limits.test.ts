import { randomBytes } from "node:crypto";
import { io } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { addressBucket } from "../../functions/src/shared/address-bucket";
import { MemoryRateLimiter } from "../../functions/src/shared/rate-limit";
import { newPublicKeyPem, registerUser, startTestApp, TestClock, type ApiResponse, type RegisteredUser, type TestApp } from "../support/app";
import { messageBody, sendMessage } from "../support/messages";
import { closeAllSockets, connect, connectAs, emitWithAck, nextEvent } from "../support/sockets";
import { expectError } from "../support/expect-error";
import { initiateExchange, person, signedEphemeral } from "../support/key-exchange";
import { send, upload } from "./support";

/**
 * Every endpoint class and the realtime relay have a rate limit (README "Rate limits"). Each story starts
 * an app with a small limit of its own, trips it, and checks the refusal: 429 RATE_LIMITED with
 * Retry-After and RateLimit-* over HTTP, a RATE_LIMITED error on the socket. The limits that must hold
 * across instances are tripped through two instances sharing one Firestore project.
 */

const started: TestApp[] = [];

async function appWith(env: Record<string, string>, options: Parameters<typeof startTestApp>[1] = {}): Promise<TestApp> {
  const app = await startTestApp(env, options);
  started.push(app);
  return app;
}

afterEach(async () => {
  closeAllSockets();
  // Closing one instance clears the project's data: close the second instances first.
  for (const app of started.reverse()) await app.close();
  started.length = 0;
});

function expectRateLimited(response: Pick<ApiResponse, "status" | "body" | "headers">, limit: number): void {
  expectError(response, 429, "RATE_LIMITED");
  const retryAfter = Number(response.headers.get("retry-after"));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`).toBe(true);
  expect(response.headers.get("ratelimit-limit")).toBe(String(limit));
  expect(response.headers.get("ratelimit-remaining")).toBe("0");
  expect(Number(response.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
  expect(response.body.error.details).toEqual({ retryAfterSeconds: retryAfter });
}

function registration() {
  const id = randomBytes(6).toString("hex");
  return { email: `rl_${id}@example.com`, username: `rl_${id}`, password: "correct horse battery staple", publicKey: newPublicKeyPem() };
}

const register = (app: TestApp) => app.request("POST", "/api/auth/register", { body: registration() });

describe("HTTP endpoint classes", () => {
  /**
   * Each class: the env that makes its limit 2, and `call`, one request of the class by `user` (a fresh
   * user of `app`). The third call must be refused, whichever instance it reaches.
   */
  const CLASSES: Array<{
    name: string;
    env: Record<string, string>;
    call: (app: TestApp, user: RegisteredUser & { peer: RegisteredUser }) => Promise<ApiResponse>;
  }> = [
    { name: "register (per address)", env: { REGISTER_IP_LIMIT: "2" }, call: (app) => register(app) },
    {
      name: "login (per account and address)",
      env: { LOGIN_ACCOUNT_LIMIT: "2" },
      call: (app, user) => app.request("POST", "/api/auth/login", { body: { email: user.email, password: "wrong password" } }),
    },
    {
      name: "login (per account, every address together)",
      env: { LOGIN_ACCOUNT_CEILING_LIMIT: "2" },
      call: (app, user) => app.request("POST", "/api/auth/login", { body: { email: user.email, password: "wrong password" } }),
    },
    {
      name: "change-password (a wrong current password counts as a failed login)",
      env: { LOGIN_ACCOUNT_LIMIT: "2" },
      call: (app, user) =>
        app.request("POST", "/api/auth/change-password", { token: user.token, body: { currentPassword: "wrong password", newPassword: "a brand new passphrase" } }),
    },
    {
      name: "refresh (per address)",
      env: { REFRESH_IP_LIMIT: "2" },
      call: (app) => app.request("POST", "/api/auth/refresh", { body: { refreshToken: `sess_${"x".repeat(24)}.guess` } }),
    },
    {
      name: "search (per user)",
      env: { SEARCH_LIMIT: "2" },
      call: (app, user) => app.request("GET", "/api/users/search?q=rl", { token: user.token }),
    },
    {
      name: "contact listing (per user)",
      env: { CONTACT_READ_LIMIT: "2" },
      call: (app, user) => app.request("GET", "/api/users/contacts", { token: user.token }),
    },
    {
      name: "contact changes (per user)",
      env: { CONTACT_WRITE_LIMIT: "2" },
      call: (app, user) => app.request("POST", "/api/users/add-contact", { token: user.token, body: { username: user.peer.username } }),
    },
    {
      name: "send (per sender and receiver)",
      env: { SEND_RATE_BURST: "2", SEND_RATE_PER_SECOND: "0.01" },
      call: (app, user) => sendMessage(app, user, user.peer),
    },
    {
      name: "upload (per user)",
      env: { FILE_UPLOAD_LIMIT: "2" },
      call: async (app, user) => {
        const answer = await upload(app, user, user.peer, randomBytes(32));
        return { status: answer.status, headers: answer.headers, body: answer.body };
      },
    },
  ];

  it.each(CLASSES)("when $name is called a third time with a limit of 2, across two instances, then 429 RATE_LIMITED", async ({ env, call }) => {
    // The users are registered by an instance without the limit, so that registering them costs nothing.
    const setup = await appWith({});
    const [user, peer] = [await registerUser(setup), await registerUser(setup)];
    const first = await appWith(env, { projectId: setup.projectId });
    const second = await appWith(env, { projectId: setup.projectId });
    const caller = { ...user, peer };

    const answers = [await call(first, caller), await call(second, caller)];
    const refused = await call(first, caller);

    for (const answer of answers) expect(answer.status, JSON.stringify(answer.body)).not.toBe(429);
    expectRateLimited(refused, 2);
  });

  it("when REGISTER_GLOBAL_LIMIT registrations came from any addresses through any instances, then the next is 429 from a fresh address too", async () => {
    const env = { REGISTER_GLOBAL_LIMIT: "3", TRUST_PROXY: "1" };
    const first = await appWith(env);
    const second = await appWith(env, { projectId: first.projectId });
    const from = (app: TestApp, address: string) =>
      app.request("POST", "/api/auth/register", { body: registration(), headers: { "X-Forwarded-For": address } });
    expect((await from(first, "198.51.100.1")).status).toBe(201);
    expect((await from(second, "198.51.100.2")).status).toBe(201);
    const allowed = await from(first, "2001:db8:7::1");
    expect(allowed.status).toBe(201);
    // The address's own bucket speaks for an allowed registration, not the ceiling.
    expect(allowed.headers.get("ratelimit-limit")).toBe(String(first.config.rateLimits.register.limit));

    expectRateLimited(await from(second, "203.0.113.9"), 3);
    expectRateLimited(await from(first, "2001:db8:8::1"), 3);
  });

  it("when a user has made 2 key exchange requests (initiate and respond together), then the third is 429 on any instance", async () => {
    const first = await appWith({ KEY_EXCHANGE_LIMIT: "2" });
    const second = await appWith({ KEY_EXCHANGE_LIMIT: "2" }, { projectId: first.projectId });
    const [alice, bob, carol] = [await person(first), await person(first), await person(first)];

    const exchangeId = await initiateExchange(first, bob, alice);
    expect((await second.request("POST", "/api/keyexchange/respond", { token: alice.token, body: { exchangeId, ...(await signedEphemeral(alice)) } })).status).toBe(200);
    await initiateExchange(first, alice, carol);
    const refused = await second.request("POST", "/api/keyexchange/initiate", {
      token: alice.token,
      body: { targetUserId: bob.id, ...(await signedEphemeral(alice)) },
    });

    expectRateLimited(refused, 2);
    expect((await first.request("GET", "/api/keyexchange/pending", { token: alice.token })).status).toBe(200);
  });

  it("when one user is throttled on search, then another user and the user's other endpoints are not", async () => {
    const app = await appWith({ SEARCH_LIMIT: "1" });
    const [alice, bob] = [await registerUser(app), await registerUser(app)];
    await app.request("GET", "/api/users/search?q=u", { token: alice.token });

    expectRateLimited(await app.request("GET", "/api/users/search?q=u", { token: alice.token }), 1);
    expect((await app.request("GET", "/api/users/search?q=u", { token: bob.token })).status).toBe(200);
    expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(200);
  });

  it("when the window has passed, then a throttled class answers again", async () => {
    const app = await appWith({ SEARCH_LIMIT: "1", SEARCH_WINDOW_SECONDS: "60" });
    const alice = await registerUser(app);
    await app.request("GET", "/api/users/search?q=u", { token: alice.token });
    const refused = await app.request("GET", "/api/users/search?q=u", { token: alice.token });
    expectRateLimited(refused, 1);

    app.clock.advance(Number(refused.headers.get("retry-after")) * 1000);

    expect((await app.request("GET", "/api/users/search?q=u", { token: alice.token })).status).toBe(200);
  });

  it("when a request is allowed, then its RateLimit-* headers say how much of the class is left", async () => {
    const app = await appWith({ SEARCH_LIMIT: "5" });
    const alice = await registerUser(app);

    const response = await app.request("GET", "/api/users/search?q=u", { token: alice.token });

    expect(response.headers.get("ratelimit-limit")).toBe("5");
    expect(response.headers.get("ratelimit-remaining")).toBe("4");
  });

  describe("the ceilings on every request (per process)", () => {
    it("when one address has made API_IP_LIMIT requests of any kind, then the next is 429, even to health or an unknown route", async () => {
      const app = await appWith({ API_IP_LIMIT: "3" });
      await app.request("GET", "/api/health");
      await app.request("GET", "/api/nothing-here");
      await app.request("POST", "/api/auth/login", { body: {} });

      expectRateLimited(await app.request("GET", "/api/health"), 3);
      expectRateLimited(await app.request("GET", "/api/users/profile"), 3);
      expectRateLimited(await send(app, "POST", "/api/files/upload"), 3);
    });

    it("when the address is throttled on one instance, then another instance still answers it (the ceiling is per process)", async () => {
      const first = await appWith({ API_IP_LIMIT: "1" });
      const second = await appWith({ API_IP_LIMIT: "1" }, { projectId: first.projectId });
      await first.request("GET", "/api/health");

      expect((await first.request("GET", "/api/health")).status).toBe(429);
      expect((await second.request("GET", "/api/health")).status).toBe(200);
    });

    it("when one user has made API_USER_LIMIT authenticated requests, then every further one is 429 (files too) and other users go on", async () => {
      const app = await appWith({ API_USER_LIMIT: "3" });
      const [alice, bob] = [await registerUser(app), await registerUser(app)];
      for (let i = 0; i < 3; i += 1) expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(200);

      expectRateLimited(await app.request("GET", "/api/users/contacts", { token: alice.token }), 3);
      expectRateLimited(await app.request("GET", `/api/messages/${bob.id}`, { token: alice.token }), 3);
      expectRateLimited(await send(app, "GET", "/api/files/not-an-id", { authorization: `Bearer ${alice.token}` }), 3);
      expect((await app.request("GET", "/api/users/profile", { token: bob.token })).status).toBe(200);
    });

    it("when requests are unauthenticated, then they do not count against any user", async () => {
      const app = await appWith({ API_USER_LIMIT: "1" });
      const alice = await registerUser(app);
      for (let i = 0; i < 3; i += 1) await app.request("GET", "/api/users/profile");

      expect((await app.request("GET", "/api/users/profile", { token: alice.token })).status).toBe(200);
    });

    it("when a client rotates X-Forwarded-For without a trusted proxy, then it stays in its own bucket", async () => {
      const app = await appWith({ API_IP_LIMIT: "2", TRUST_PROXY: "0" });
      for (const forwarded of ["1.1.1.1", "2.2.2.2"]) await app.request("GET", "/api/health", { headers: { "X-Forwarded-For": forwarded } });

      expect((await app.request("GET", "/api/health", { headers: { "X-Forwarded-For": "3.3.3.3" } })).status).toBe(429);
    });
  });
});

describe("per-address buckets: an IPv6 client's /64 is one address", () => {
  it("when addresses are bucketed, then IPv4 (and IPv4-mapped IPv6) stay one by one and IPv6 counts by /64", () => {
    expect(addressBucket("203.0.113.7")).toBe("203.0.113.7");
    expect(addressBucket("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(addressBucket("::FFFF:cb00:7107")).toBe("203.0.113.7");
    expect(addressBucket("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressBucket("::1")).toBe("0:0:0:0::/64");
    expect(addressBucket("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
    expect(addressBucket("unknown")).toBe("unknown");
  });

  /** Each per-address class with a limit of 1, one request of it from `address` (behind one trusted proxy). */
  const CLASSES: Array<{ name: string; env: Record<string, string>; call: (app: TestApp, address: string) => Promise<ApiResponse> }> = [
    { name: "every request", env: { API_IP_LIMIT: "1" }, call: (app, address) => app.request("GET", "/api/health", { headers: { "X-Forwarded-For": address } }) },
    {
      name: "register",
      env: { REGISTER_IP_LIMIT: "1" },
      call: (app, address) => app.request("POST", "/api/auth/register", { body: registration(), headers: { "X-Forwarded-For": address } }),
    },
    {
      name: "login",
      env: { LOGIN_IP_LIMIT: "1" },
      call: (app, address) =>
        app.request("POST", "/api/auth/login", { body: { email: registration().email, password: "wrong password" }, headers: { "X-Forwarded-For": address } }),
    },
    {
      name: "refresh",
      env: { REFRESH_IP_LIMIT: "1" },
      call: (app, address) =>
        app.request("POST", "/api/auth/refresh", { body: { refreshToken: `sess_${"x".repeat(24)}.guess` }, headers: { "X-Forwarded-For": address } }),
    },
  ];

  it.each(CLASSES)("when two addresses in one /64 call $name, then they share a bucket; another /64 and IPv4 addresses have their own", async ({ env, call }) => {
    const app = await appWith({ ...env, TRUST_PROXY: "1" });
    expect((await call(app, "2001:db8:1:2::1")).status).not.toBe(429);
    expectRateLimited(await call(app, "2001:db8:1:2:ffff:ffff:ffff:fffe"), 1);
    expect((await call(app, "2001:db8:1:3::1")).status).not.toBe(429);
    expect((await call(app, "198.51.100.1")).status).not.toBe(429);
    expect((await call(app, "198.51.100.2")).status).not.toBe(429);
    expect((await call(app, "::ffff:198.51.100.1")).status).toBe(429);
  });

  it("when two addresses in one /64 open relay connections, then they share a bucket; another /64 has its own", async () => {
    const app = await appWith({ SOCKET_CONNECT_LIMIT: "1", TRUST_PROXY: "1" }, { relay: {} });
    const handshake = (address: string) => fetch(`${app.baseUrl}/socket.io/?EIO=4&transport=polling`, { headers: { "X-Forwarded-For": address } });
    expect((await handshake("2001:db8:1:2::1")).status).toBe(200);
    expect((await handshake("2001:db8:1:2::2")).status).toBe(403);
    expect((await handshake("2001:db8:1:3::1")).status).toBe(200);
  });
});

describe("the realtime relay", () => {
  const relayApp = (env: Record<string, string>) => appWith(env, { relay: {} });

  // Connections are counted in Engine.IO's allowRequest, before the handshake does any work: a refused
  // one never becomes a socket. Engine.IO answers the handshake request 403 with the reason as its
  // message, which socket.io-client surfaces as connect_error.
  const handshake = (app: { baseUrl: string }, headers: Record<string, string> = {}) =>
    fetch(`${app.baseUrl}/socket.io/?EIO=4&transport=polling`, { headers });

  it("when one address opens more than SOCKET_CONNECT_LIMIT connections, then the next handshake is refused (connect_error, 403 saying why)", async () => {
    const app = await relayApp({ SOCKET_CONNECT_LIMIT: "2" });
    for (let i = 0; i < 2; i += 1) await nextEvent(connect(app), "connect");

    const refused = connect(app);
    expect(await nextEvent<Error>(refused, "connect_error")).toBeInstanceOf(Error);
    expect(refused.connected).toBe(false);
    const response = await handshake(app);
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ message: expect.stringMatching(/^Too many connections; retry in \d+ s$/) });
  });

  it("when the relay trusts one proxy hop, then addresses behind it are limited one by one", async () => {
    const app = await relayApp({ SOCKET_CONNECT_LIMIT: "1", TRUST_PROXY: "1" });
    const from = (address: string) =>
      io(app.baseUrl, { transports: ["websocket"], forceNew: true, reconnection: false, extraHeaders: { "X-Forwarded-For": address } });
    const sockets = [from("10.0.0.1"), from("10.0.0.2")];
    try {
      await Promise.all(sockets.map((socket) => nextEvent(socket, "connect")));
      const again = from("10.0.0.1");
      sockets.push(again);
      expect(await nextEvent<Error>(again, "connect_error")).toBeInstanceOf(Error);
      expect((await handshake(app, { "X-Forwarded-For": "10.0.0.1" })).status).toBe(403);
      expect((await handshake(app, { "X-Forwarded-For": "10.0.0.3" })).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.disconnect();
    }
  });

  it("when one address holds SOCKETS_PER_ADDRESS connections, then the next is refused until one closes, authenticated or not", async () => {
    const app = await relayApp({ SOCKETS_PER_ADDRESS: "3" });
    const alice = await registerUser(app);
    // Raw Engine.IO connections (never opening a Socket.IO session) count as much as authenticated sockets.
    const rawManager = io(app.baseUrl, { transports: ["websocket"], forceNew: true, reconnection: false, autoConnect: false }).io;
    await new Promise<void>((resolve, reject) => rawManager.open((error) => (error ? reject(error) : resolve())));
    const held = [await connectAs(app, alice.token), connect(app)];
    await nextEvent(held[1]!, "connect");

    const refused = connect(app);
    expect(await nextEvent<Error>(refused, "connect_error")).toBeInstanceOf(Error);
    const response = await handshake(app);
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ message: "Too many connections from this address (at most 3)" });

    rawManager.engine.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await nextEvent(connect(app), "connect");
  });

  it("when a transport never opens a Socket.IO session, then it is closed after SOCKET_CONNECT_TIMEOUT_SECONDS", async () => {
    const app = await relayApp({ SOCKET_CONNECT_TIMEOUT_SECONDS: "1" });
    const manager = io(app.baseUrl, { transports: ["websocket"], forceNew: true, reconnection: false, autoConnect: false }).io;
    await new Promise<void>((resolve, reject) => manager.open((error) => (error ? reject(error) : resolve())));
    const started = Date.now();
    await new Promise<void>((resolve) => manager.engine.once("close", () => resolve()));
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("when a user holds SOCKETS_PER_USER sockets on an instance, then another is refused auth_error RATE_LIMITED until one closes", async () => {
    const app = await relayApp({ SOCKETS_PER_USER: "2" });
    const alice = await registerUser(app);
    const held = await Promise.all([connectAs(app, alice.token), connectAs(app, alice.token)]);
    const extra = connect(app, { token: alice.token });
    expect(await nextEvent(extra, "auth_error")).toMatchObject({ code: "RATE_LIMITED", details: { limit: 2 } });
    // Concurrent attempts cannot slip past the cap either.
    const rush = Array.from({ length: 4 }, () => connect(app, { token: alice.token }));
    const outcomes = await Promise.all(
      rush.map((socket) => Promise.race([nextEvent(socket, "authenticated").then(() => "in"), nextEvent(socket, "auth_error").then(() => "out")])),
    );
    expect(outcomes).toEqual(["out", "out", "out", "out"]);
    held[0]!.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await connectAs(app, alice.token)).toBeDefined();
  });

  it("when one address tries to authenticate more than SOCKET_AUTH_LIMIT times, then auth_error RATE_LIMITED even with a valid token", async () => {
    const app = await relayApp({ SOCKET_AUTH_LIMIT: "2" });
    const alice = await registerUser(app);
    for (let i = 0; i < 2; i += 1) {
      const socket = connect(app);
      socket.emit("authenticate", { token: "not-a-token" });
      expect(await nextEvent(socket, "auth_error")).toMatchObject({ code: "UNAUTHORIZED" });
    }

    const socket = connect(app, { token: alice.token });

    expect(await nextEvent(socket, "auth_error")).toMatchObject({ code: "RATE_LIMITED", details: { retryAfterSeconds: expect.any(Number) } });
  });

  it("when a socket emits more than SOCKET_EVENT_LIMIT events, then each further one is RATE_LIMITED (ack or error event)", async () => {
    const app = await relayApp({ SOCKET_EVENT_LIMIT: "3", SOCKET_EVENT_WINDOW_SECONDS: "60" });
    const alice = await registerUser(app);
    const socket = await connectAs(app, alice.token);
    for (let i = 0; i < 3; i += 1) expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ success: true });

    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({
      success: false,
      error: { code: "RATE_LIMITED", details: { retryAfterSeconds: 20 } },
    });
    socket.emit("message_ack", { messageId: "msg_x" });
    expect(await nextEvent(socket, "error")).toMatchObject({ code: "RATE_LIMITED" });
  });

  it("when an unauthenticated socket floods events, then they count too: RATE_LIMITED instead of UNAUTHORIZED", async () => {
    const app = await relayApp({ SOCKET_EVENT_LIMIT: "2" });
    const socket = connect(app);
    await nextEvent(socket, "connect");
    for (let i = 0; i < 2; i += 1) expect(await emitWithAck(socket, "send_message", {})).toMatchObject({ error: { code: "UNAUTHORIZED" } });

    expect(await emitWithAck(socket, "send_message", {})).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
  });

  it("when the event window has passed, then the socket may emit again", async () => {
    const app = await relayApp({ SOCKET_EVENT_LIMIT: "1", SOCKET_EVENT_WINDOW_SECONDS: "10" });
    const alice = await registerUser(app);
    const socket = connect(app);
    socket.emit("authenticate", { token: alice.token });
    await nextEvent(socket, "authenticated");
    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ error: { code: "RATE_LIMITED" } });

    app.clock.advance(10_000);

    expect(await emitWithAck(socket, "join_room", { userId: alice.id })).toMatchObject({ success: true });
  });

  it("when typing goes past TYPING_LIMIT per TYPING_WINDOW_SECONDS, then RATE_LIMITED", async () => {
    const app = await relayApp({ TYPING_LIMIT: "2", TYPING_WINDOW_SECONDS: "60" });
    const [alice, bob] = [await registerUser(app), await registerUser(app)];
    await app.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: bob.username } });
    const socket = await connectAs(app, alice.token);
    for (let i = 0; i < 2; i += 1) expect(await emitWithAck(socket, "typing_start", { contactId: bob.id })).toMatchObject({ success: true });

    expect(await emitWithAck(socket, "typing_start", { contactId: bob.id })).toMatchObject({
      success: false,
      error: { code: "RATE_LIMITED", details: { retryAfterSeconds: 30 } },
    });
  });

  it("when a pair has used its send burst over REST, then send_message on the socket is RATE_LIMITED too (one limit for both)", async () => {
    const app = await relayApp({ SEND_RATE_BURST: "2", SEND_RATE_PER_SECOND: "0.01" });
    const [alice, bob] = [await registerUser(app), await registerUser(app)];
    expect((await sendMessage(app, alice, bob)).status).toBe(201);
    const socket = await connectAs(app, alice.token);
    expect(await emitWithAck(socket, "send_message", messageBody(bob.id))).toMatchObject({ success: true });

    expect(await emitWithAck(socket, "send_message", messageBody(bob.id))).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
    expectRateLimited(await sendMessage(app, alice, bob), 2);
  });
});

describe("the per-process buckets", () => {
  it("when a flood of new keys arrives, then the process keeps a bounded number of buckets, and a throttled key in use stays throttled", () => {
    const limiter = new MemoryRateLimiter(new TestClock(), 100);
    const policy = { limit: 1, windowSeconds: 3600 };
    limiter.consumeNow("attacker", policy);

    for (let i = 0; i < 1000; i += 1) {
      limiter.consumeNow(`spoofed-${i}`, policy);
      if (i % 50 === 0) expect(limiter.consumeNow("attacker", policy).allowed).toBe(false);
    }

    expect(limiter.size).toBeLessThanOrEqual(100);
    expect(limiter.consumeNow("attacker", policy).allowed).toBe(false);
  });
});
