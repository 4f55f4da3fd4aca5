import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app";
import { messageBody } from "../support/messages";
import { closeAllSockets, collect, connect, connectAs, emitWithAck, nextEvent, waitFor } from "../support/sockets";
import { person, signedEphemeral, type Person } from "../support/key-exchange";
import { forgedCredentials, send, upload } from "./support";

/**
 * Log hygiene over a whole session: register, login, contacts, send (REST and socket), history, key
 * exchange, upload and download, a socket session with typing and acknowledgements, refresh, logout, and
 * the failures an attacker or a buggy client causes along the way (wrong password, forged tokens, bad
 * bodies that carry real secrets). Every log line the app wrote is then searched for every secret value
 * used: no token, password, refresh token, ciphertext, signature or key material may appear.
 *
 * The same for what telemetry recorded over the session (issue 19): every metric label in /metrics and
 * every span's name and attributes carry none of those secrets, and no email, username or id either
 * (labels and attributes come from small fixed sets: route patterns, codes, event names).
 */

let app: TestApp;
/** The users' ids, emails and usernames: fine in a log line (an operator's audit), never in a label. */
const identifiers: string[] = [];
/** Every secret value the session used, by what it is. */
const secrets = new Map<string, string>();

function remember(what: string, value: string | undefined): void {
  if (value === undefined || value.length < 8) throw new Error(`no usable secret for ${what}`);
  secrets.set(`${what} (#${secrets.size + 1})`, value);
}

/** A PEM's base64 lines (the key material itself, whatever the armor around it). */
function pemBody(pem: string): string[] {
  return pem.split(/\r?\n/).filter((line) => line.length >= 16 && !line.startsWith("-----"));
}

function rememberTokens(who: string, tokens: { token: string; refreshToken: string }): void {
  remember(`${who} access token`, tokens.token);
  remember(`${who} access token signature`, tokens.token.split(".")[2]);
  remember(`${who} access token claims`, tokens.token.split(".")[1]);
  remember(`${who} refresh token`, tokens.refreshToken);
  remember(`${who} refresh token secret`, tokens.refreshToken.split(".")[1]);
}

beforeAll(async () => {
  app = await startTestApp({}, { relay: {}, telemetry: true });
  const [alice, bob] = await Promise.all([person(app), person(app)]);
  for (const [who, user] of [
    ["alice", alice],
    ["bob", bob],
  ] as const) {
    remember(`${who} password`, user.password);
    remember(`${who} email`, user.email);
    rememberTokens(who, user);
    for (const line of pemBody(user.publicKey)) remember(`${who} identity key`, line);
    identifiers.push(user.id, user.email, user.username);
  }
  await runSession(alice, bob);
});

afterAll(async () => {
  closeAllSockets();
  await app?.close();
});

async function runSession(alice: Person, bob: Person): Promise<void> {
  // Login, with a wrong password first.
  const wrong = `wrong-${randomBytes(8).toString("hex")}`;
  remember("a wrong password", wrong);
  expect((await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: wrong } })).status).toBe(401);
  const login = await app.request("POST", "/api/auth/login", { body: { email: alice.email, password: alice.password } });
  expect(login.status).toBe(200);
  rememberTokens("alice's second session", login.body);

  // Contacts.
  await app.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: bob.username } });
  await app.request("POST", "/api/users/add-contact", { token: bob.token, body: { username: alice.username } });
  await app.request("GET", "/api/users/contacts", { token: alice.token });
  await app.request("GET", `/api/users/search?q=${bob.username.slice(0, 5)}`, { token: alice.token });

  // Sockets: bob's over the handshake, alice's over the authenticate event.
  const bobSocket = await connectAs(app, bob.token);
  const bobReceives = collect(bobSocket, "message_received");
  const aliceSocket = connect(app);
  aliceSocket.emit("authenticate", { token: `Bearer ${alice.token}` });
  await nextEvent(aliceSocket, "authenticated");

  // Messages over REST and over the socket, acknowledged both ways; then history.
  const rest = messageBody(bob.id);
  const overSocket = messageBody(bob.id);
  for (const message of [rest, overSocket]) {
    for (const field of ["encryptedContent", "iv", "authTag", "nonce", "signature"] as const) remember(`message ${field}`, message[field]);
  }
  expect((await app.request("POST", "/api/messages/send", { token: alice.token, body: rest })).status).toBe(201);
  expect(await emitWithAck(aliceSocket, "send_message", overSocket)).toMatchObject({ success: true });
  await waitFor(() => bobReceives.length === 2, 5000, "both messages");
  await emitWithAck(bobSocket, "message_ack", { messageId: bobReceives[0].id });
  await app.request("GET", `/api/messages/${bob.id}`, { token: alice.token });
  await app.request("GET", `/api/messages/${alice.id}?limit=10`, { token: bob.token });

  // Typing.
  await emitWithAck(aliceSocket, "typing_start", { contactId: bob.id });
  await emitWithAck(aliceSocket, "typing_stop", { contactId: bob.id });

  // Key exchange, with the request and the response delivered over the sockets.
  const offer = await signedEphemeral(alice);
  const answer = await signedEphemeral(bob);
  for (const [who, signed] of [
    ["initiator", offer],
    ["target", answer],
  ] as const) {
    remember(`${who} exchange signature`, signed.signature);
    for (const line of pemBody(signed.ephemeralPublicKey)) remember(`${who} ephemeral key`, line);
  }
  const requested = nextEvent(bobSocket, "key_exchange_request");
  const initiated = await app.request("POST", "/api/keyexchange/initiate", { token: alice.token, body: { targetUserId: bob.id, ...offer } });
  expect(initiated.status).toBe(201);
  await requested;
  const responded = nextEvent(aliceSocket, "key_exchange_response");
  expect((await app.request("POST", "/api/keyexchange/respond", { token: bob.token, body: { exchangeId: initiated.body.exchangeId, ...answer } })).status).toBe(200);
  await responded;
  await app.request("GET", `/api/keyexchange/${initiated.body.exchangeId}`, { token: bob.token });
  await app.request("GET", "/api/keyexchange/pending", { token: alice.token });

  // A file, uploaded, read and downloaded.
  const bytes = randomBytes(2048);
  const fields = { iv: randomBytes(12).toString("base64"), authTag: randomBytes(16).toString("base64"), signature: randomBytes(64).toString("base64"), filename: `secret-plan-${randomBytes(4).toString("hex")}.pdf` };
  for (const [field, value] of Object.entries(fields)) remember(`file ${field}`, value);
  remember("file bytes (base64)", bytes.subarray(0, 48).toString("base64"));
  remember("file bytes (hex)", bytes.subarray(0, 32).toString("hex"));
  const uploaded = await upload(app, alice, bob, bytes, fields);
  expect(uploaded.status).toBe(201);
  await app.request("GET", `/api/files/${uploaded.body.fileId}/meta`, { token: bob.token });
  expect((await send(app, "GET", `/api/files/${uploaded.body.fileId}`, { authorization: `Bearer ${bob.token}` })).bytes.equals(bytes)).toBe(true);

  // Refusals that carry real secrets in what was refused.
  const forged = forgedCredentials(app, alice, bob);
  for (const [kind, token] of Object.entries(forged)) {
    remember(`forged token (${kind})`, token);
    await app.request("GET", "/api/users/profile", { token });
    const socket = connect(app, { token });
    await nextEvent(socket, "auth_error");
  }
  await app.request("POST", "/api/messages/send", { token: alice.token, body: { ...messageBody(bob.id), timestamp: "yesterday", encryptedContent: rest.encryptedContent } });
  await app.request("POST", "/api/messages/send", { token: alice.token, body: rest }); // a replay: 409
  const tooLong = `${alice.password}${"x".repeat(80)}`;
  remember("a refused over-long password", tooLong);
  await app.request("POST", "/api/auth/register", { body: { email: "x@example.com", username: "refused_user", password: tooLong, publicKey: alice.publicKey } });
  await app.request("POST", "/api/keyexchange/initiate", { token: alice.token, body: { targetUserId: bob.id, ephemeralPublicKey: offer.ephemeralPublicKey, signature: answer.signature } });
  await app.request("POST", "/api/auth/refresh", { body: { refreshToken: `${alice.refreshToken}x` } });

  // Refresh (rotation, then a reuse that revokes the session) and logout.
  const refreshed = await app.request("POST", "/api/auth/refresh", { body: { refreshToken: login.body.refreshToken } });
  expect(refreshed.status).toBe(200);
  rememberTokens("alice's refreshed session", refreshed.body);
  expect((await app.request("POST", "/api/auth/refresh", { body: { refreshToken: login.body.refreshToken } })).status).toBe(401);
  const loggedOut = nextEvent(bobSocket, "auth_error", 5000);
  expect((await app.request("POST", "/api/auth/logout", { token: bob.token })).status).toBe(200);
  await loggedOut;
}

describe("the logs of a whole session", () => {
  it("when the session is over, then the logs are there: one line per request, the socket session, the refusals", () => {
    const lines = app.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const routes = new Set(lines.filter((line) => line.message === "request").map((line) => line.route));

    for (const route of [
      "/api/auth/register",
      "/api/auth/login",
      "/api/auth/refresh",
      "/api/auth/logout",
      "/api/users/add-contact",
      "/api/messages/send",
      "/api/messages/:contactId",
      "/api/keyexchange/initiate",
      "/api/keyexchange/respond",
      "/api/files/upload",
      "/api/files/:fileId",
    ]) {
      expect(routes, route).toContain(route);
    }
    expect(lines.some((line) => line.message === "socket authenticated")).toBe(true);
    expect(lines.filter((line) => line.status === 401).length).toBeGreaterThan(5);
    expect(secrets.size).toBeGreaterThanOrEqual(50);
  });

  /** What of `secrets` appears in `lines` (as sent, or as JSON would escape it). */
  function secretsIn(lines: string[]): string[] {
    const everything = lines.join("\n");
    return [...secrets].filter(([, value]) => everything.includes(value) || everything.includes(JSON.stringify(value).slice(1, -1))).map(([what]) => what);
  }

  it("when every log line is searched for every secret value used, then none is found", () => {
    expect(secretsIn(app.logs)).toEqual([]);
  });

  it("when a line did carry one (control), then the search finds it", () => {
    const leaked = JSON.stringify({ severity: "INFO", message: "oops", header: `Bearer ${[...secrets.values()].find((value) => value.startsWith("eyJ"))}` });

    expect(secretsIn([...app.logs, leaked]).length).toBeGreaterThan(0);
  });

  it("when a line is written, then it is one JSON object with a severity and a message, and no field that names a secret has a value", () => {
    const SECRET_FIELDS = /^(password|passwordHash|token|accessToken|refreshToken|authorization|cookie|secret|encryptedContent|encryptedData|iv|authTag|nonce|signature|publicKey|ephemeralPublicKey)$/i;
    const offending: string[] = [];
    const walk = (value: unknown, path: string) => {
      if (value === null || typeof value !== "object") return;
      for (const [key, inner] of Object.entries(value)) {
        if (SECRET_FIELDS.test(key) && inner !== "[redacted]") offending.push(`${path}.${key}`);
        walk(inner, `${path}.${key}`);
      }
    };
    for (const line of app.logs) {
      const parsed = JSON.parse(line);
      expect(parsed).toMatchObject({ severity: expect.any(String), message: expect.any(String) });
      walk(parsed, "line");
    }

    expect(offending).toEqual([]);
  });

  describe("what telemetry recorded over the session", () => {
    /** Every metric line of /metrics, and every span's name, attributes, events and status, as text. */
    async function recorded(): Promise<string[]> {
      const metrics = (await (await fetch(`${app.baseUrl}/metrics`)).text()).split("\n").filter((line) => line && !line.startsWith("#"));
      const spans = app.telemetry!.spans!.getFinishedSpans().map((span) =>
        JSON.stringify({ name: span.name, attributes: span.attributes, events: span.events, status: span.status, resource: span.resource.attributes }),
      );
      return [...metrics, ...spans];
    }

    it("when the metrics and spans are searched for every secret value used, then none is found", async () => {
      const lines = await recorded();
      expect(lines.some((line) => line.startsWith("messenger_messages_stored_total"))).toBe(true);
      expect(lines.some((line) => line.includes('"socket send_message"'))).toBe(true);
      expect(secretsIn(lines)).toEqual([]);
    });

    it("when they are searched for the users' ids, emails and usernames and for any minted id, then none is found", async () => {
      const lines = (await recorded()).join("\n");
      expect(identifiers.length).toBe(6);
      expect(identifiers.filter((value) => lines.includes(value))).toEqual([]);
      expect(lines.match(/\b(user|msg|exchange|file|sess)_[A-Za-z0-9_-]{20,}/g) ?? []).toEqual([]);
      expect(lines.match(/[^\s"@]+@[^\s"@]+\.[a-z]{2,}/gi) ?? []).toEqual([]);
    });

    it("when a label did carry one (control), then the search finds it", async () => {
      const leaked = `messenger_messages_stored_total{user="${identifiers[0]}"} 1`;
      const lines = [...(await recorded()), leaked].join("\n");
      expect(identifiers.filter((value) => lines.includes(value))).toEqual([identifiers[0]]);
    });
  });
});
