import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Router } from "express";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ApiError, approveDeviceLink, emitChecked, requestDeviceLink, type ApiClient, type OperationId, type RealtimeSocket } from "../client/src/index.js";
import { createApp } from "../functions/src/app";
import { buildOpenApiDocument } from "../functions/src/reference/openapi";
import { startTestApp, type TestApp } from "./support/app";
import { apiClient, documentSchemas, realtimeClient } from "./support/client";
import { closeAllSockets, connect } from "./support/sockets";
import { newEphemeral, newIdentity, signP1363, encrypt, deriveSessionKey, type Identity } from "./support/webcrypto";

/**
 * The OpenAPI document (GET /api/openapi.json) and the typed client generated from it: the document lists
 * exactly the routes the app serves, every real answer and socket payload matches it, its request
 * schemas are the ones the routes enforce, it agrees with docs/API.md, and client/src/generated.ts is
 * what the document gives.
 */

type JsonSchema = Record<string, any>;
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, JsonSchema>>;
  components: { schemas: Record<string, JsonSchema> };
  "x-socket-events": {
    clientToServer: Record<string, { payload: JsonSchema; ack?: JsonSchema }>;
    serverToClient: Record<string, { payload: JsonSchema; clientAcks?: boolean }>;
  };
}

const ROOT = resolve(__dirname, "..");
let app: TestApp;
let document: OpenApiDocument;
let schemas: ReturnType<typeof documentSchemas>;

beforeAll(async () => {
  // The expiry sweep runs often here, so `message_expired` comes soon after the clock passes expiresAt.
  app = await startTestApp({}, { relay: { expirySweepMs: 200 } });
  document = (await apiClient(app).getOpenApiDocument()) as unknown as OpenApiDocument;
  schemas = documentSchemas(document);
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await app.close();
});

const operationsOf = (doc: OpenApiDocument) =>
  Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));

function operation(id: OperationId) {
  const found = operationsOf(document).find((entry) => entry.operation.operationId === id);
  if (!found) throw new Error(`no operation ${id} in the document`);
  return found;
}

/** Every route of an Express app, as "METHOD /path" with OpenAPI's {param} placeholders. */
function servedRoutes(router: Router, prefix = ""): string[] {
  const routes: string[] = [];
  for (const layer of router.stack as Array<{ route?: { path: string; methods: Record<string, boolean> }; rawPath?: string; handle: { stack?: unknown } }>) {
    const path = layer.rawPath === "/" || layer.rawPath === undefined ? prefix : prefix + layer.rawPath;
    if (layer.route) {
      for (const method of Object.keys(layer.route.methods)) routes.push(`${method.toUpperCase()} ${prefix}${layer.route.path}`.replace(/:(\w+)/g, "{$1}"));
    } else if (layer.handle.stack) {
      routes.push(...servedRoutes(layer.handle as unknown as Router, path));
    }
  }
  return routes;
}

describe("the document", () => {
  it("when anyone asks, then GET /api/openapi.json answers an OpenAPI 3.1 document without a token", async () => {
    const response = await app.request("GET", "/api/openapi.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.body.openapi).toBe("3.1.0");
    expect(response.body.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    for (const { operation: entry } of operationsOf(response.body)) {
      expect(entry.operationId).toMatch(/^[a-z][A-Za-z]+$/);
      expect(Object.keys(entry.responses).some((status) => status.startsWith("2"))).toBe(true);
    }
  });

  it("when compared with the app's routes, then it documents every route the app serves and nothing else", () => {
    const express = createApp({ db: app.db, config: app.config }, app.services) as unknown as { router: Router };
    const served = servedRoutes(express.router).sort();
    const documented = operationsOf(document)
      .map(({ path, method }) => `${method.toUpperCase()} /api${path}`)
      .sort();
    expect(documented).toEqual(served);
  });

  it("when compared with docs/API.md, then every operation and every error code it names is in the hand-written reference", () => {
    const reference = readFileSync(resolve(ROOT, "docs", "API.md"), "utf8");
    for (const { path, method } of operationsOf(document)) {
      const expressPath = path.replace(/\{(\w+)\}/g, ":$1");
      const named = [`${method.toUpperCase()} ${expressPath}`, `${method.toUpperCase()} /api${expressPath}`].some((form) => reference.includes(form));
      expect(named, `${method.toUpperCase()} ${expressPath} is not in docs/API.md`).toBe(true);
    }
    const codes = new Set(operationsOf(document).flatMap(({ operation: entry }) => Object.values(entry.responses as Record<string, { description: string }>).flatMap((r) => r.description.match(/\b[A-Z][A-Z_]{3,}\b/g) ?? [])));
    for (const code of codes) expect(reference, `${code} is not in docs/API.md`).toContain(`\`${code}\``);
    for (const event of [...Object.keys(document["x-socket-events"].clientToServer), ...Object.keys(document["x-socket-events"].serverToClient)]) {
      expect(reference, `socket event ${event} is not in docs/API.md`).toContain(`\`${event}\``);
    }
  });

  it("when a JSON body, a query or a path parameter is missing or malformed, then the route refuses the field the document lists first", async () => {
    const identity = await newIdentity();
    const registered = await apiClient(app).register({ email: "first-field@example.com", username: "first_field", password: "correct horse battery", publicKey: identity.publicKeyPem });
    for (const { path, method, operation: entry } of operationsOf(document)) {
      const bodyRef = entry.requestBody?.content?.["application/json"]?.schema?.$ref as string | undefined;
      const pathParams = (entry.parameters as JsonSchema[]).filter((parameter) => parameter.in === "path");
      if (bodyRef) {
        const required = document.components.schemas[bodyRef.split("/").pop()!]!.required as string[];
        const response = await app.request(method.toUpperCase(), `/api${path}`, { body: {}, token: registered.token });
        expect(response.status, `${method} ${path}`).toBe(400);
        schemas.check(schemas.ref("ErrorEnvelope"), response.body, `${method} ${path} 400`);
        // The path's `{param}` placeholder is itself malformed, and parameters come before the body.
        expect(response.body.error.details.field, `${method} ${path}`).toBe(pathParams[0]?.name ?? required[0]);
      }
      if (pathParams.length > 0) {
        const client = apiClient(app, registered.token) as unknown as Record<string, (...args: string[]) => Promise<unknown>>;
        const error = await client[entry.operationId]!(...pathParams.map(() => "not-an-id")).catch((caught: unknown) => caught);
        expect(error, `${method} ${path}`).toBeInstanceOf(ApiError);
        expect((error as ApiError).status).toBe(400);
        expect((error as ApiError).field).toBe(pathParams[0]!.name);
      }
    }
    const noQuery = await apiClient(app, registered.token).searchUsers({} as { q: string }).catch((caught: unknown) => caught);
    expect(noQuery).toMatchObject({ status: 400, code: "VALIDATION_ERROR", field: "q" });
  });

  it("when the app has no local site (as in the Cloud Function), then it serves the document but neither the demo nor the reference page", async () => {
    for (const path of ["/", "/index.html", "/demo.js", "/api/docs", "/client/index.js"]) {
      const response = await app.request("GET", path);
      expect(response.status, path).toBe(404);
      expect(response.body.error.code, path).toBe("NOT_FOUND");
    }
  });

  it("when the typed client is generated from the served document, then it is what client/src/generated.ts holds", () => {
    const served = JSON.stringify(buildOpenApiDocument());
    expect(JSON.parse(served)).toEqual(document);
    const check = () =>
      execFileSync(process.execPath, [resolve(ROOT, "client", "scripts", "generate.mjs"), "--check", "--document", "-"], { input: served, encoding: "utf8", stdio: "pipe" });
    expect(check).not.toThrow();
  });
});

describe("every answer matches the document", () => {
  interface Party {
    identity: Identity;
    api: ApiClient;
    id: string;
    username: string;
    refreshToken: string;
  }

  async function party(name: string): Promise<Party> {
    const identity = await newIdentity();
    const username = `${name}_${Date.now().toString(36)}`;
    const answer = await documented("register", apiClient(app).register({ email: `${username}@example.com`, username, password: "correct horse battery staple", publicKey: identity.publicKeyPem }));
    return { identity, api: apiClient(app, answer.token), id: answer.user.id, username, refreshToken: answer.refreshToken };
  }

  const exercised = new Set<string>();
  const eventsSeen = new Set<string>();

  /**
   * Awaits a typed client call and checks its answer against the operation's documented success body
   * (`status`: which one, for an operation with more than one).
   */
  async function documented<T>(id: OperationId, call: Promise<T>, status?: string): Promise<T> {
    const answer = await call;
    const { operation: entry } = operation(id);
    const successes = Object.entries(entry.responses as Record<string, JsonSchema>).filter(([code]) => code.startsWith("2"));
    const [code, success] = status ? successes.find(([candidate]) => candidate === status)! : successes[successes.length - 1]!;
    const schema = success.content["application/json"]?.schema;
    if (schema) schemas.check(schema, answer, `${id} ${code}`);
    else expect(answer).toBeInstanceOf(Uint8Array);
    exercised.add(id);
    return answer;
  }

  /** The next `event` on the socket, checked against x-socket-events (and acknowledged when the document says so). */
  /** The head once the relay's sequencer has merged at least `size` bindings. */
  async function waitForHead(size: number) {
    for (let attempt = 0; ; attempt++) {
      const head = await apiClient(app).getTransparencyHead();
      if (head.treeSize >= size || attempt > 100) return head;
      await new Promise((resolveLater) => setTimeout(resolveLater, 100));
    }
  }

  function documentedEvent<T = any>(socket: RealtimeSocket | ReturnType<typeof connect>, event: string): Promise<T> {
    const spec = document["x-socket-events"].serverToClient[event]!;
    return new Promise((resolvePayload, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), 10_000);
      (socket as ReturnType<typeof connect>).once(event, (payload: T, ack?: () => void) => {
        clearTimeout(timer);
        try {
          schemas.check(spec.payload, payload, `event ${event}`);
          if (spec.clientAcks) ack!();
          eventsSeen.add(event);
          resolvePayload(payload);
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  function documentedAck(event: string, answer: unknown) {
    schemas.check(document["x-socket-events"].clientToServer[event]!.ack!, answer, `${event} ack`);
    eventsSeen.add(`ack:${event}`);
  }

  it("when a client walks through every operation and event with the typed client, then each answer and payload matches its schema", { timeout: 60_000 }, async () => {
    await documented("getHealth", apiClient(app).getHealth());
    await documented("getOpenApiDocument", apiClient(app).getOpenApiDocument());

    // Two users, logged in, refreshed, contacts both ways.
    const alice = await party("alice");
    const aliceFirstDevice = alice.api;
    const bob = await party("bob");
    const login = await documented("login", apiClient(app).login({ email: `${alice.username}@example.com`, password: "correct horse battery staple" }));
    const refreshed = await documented("refresh", apiClient(app).refresh({ refreshToken: login.refreshToken }));
    alice.api = alice.api.withToken(refreshed.token);
    await documented("getProfile", alice.api.getProfile());
    await documented("addContact", alice.api.addContact({ username: bob.username }));
    await documented("addContact", bob.api.addContact({ username: alice.username }));
    await documented("searchUsers", alice.api.searchUsers({ q: bob.username.slice(0, 5), limit: 5 }));

    // Sockets. A raw one for Bob first, to see `authenticated`, `error` and his presence from Alice's side.
    const aliceSocket = await realtimeClient(app, alice.api.token!);
    const bobOnline = documentedEvent(aliceSocket, "user_online");
    const raw = connect(app, { token: bob.api.token });
    await documentedEvent(raw, "authenticated");
    await bobOnline;
    const refused = documentedEvent(raw, "error");
    raw.emit("join_room", { userId: alice.id }); // someone else's room, and no ack: an `error` event
    await refused;
    const bobOffline = documentedEvent(aliceSocket, "user_offline");
    raw.disconnect();
    await bobOffline;
    const bobSocket = await realtimeClient(app, bob.api.token!);
    await documented("listContacts", alice.api.listContacts());
    documentedAck("join_room", await emitChecked(bobSocket, "join_room", { userId: bob.id }));

    // The key exchange: REST both ways, the events between.
    const aliceEphemeral = await newEphemeral();
    const request = documentedEvent(bobSocket, "key_exchange_request");
    const initiated = await documented(
      "initiateKeyExchange",
      alice.api.initiateKeyExchange({ targetUserId: bob.id, ephemeralPublicKey: aliceEphemeral.publicKeyPem, signature: await signP1363(alice.identity, aliceEphemeral.publicKeyPem) }),
    );
    await request;
    await documented("listPendingKeyExchanges", bob.api.listPendingKeyExchanges());
    await documented("getKeyExchange", bob.api.getKeyExchange(initiated.exchangeId));
    const bobEphemeral = await newEphemeral();
    const response = documentedEvent(aliceSocket, "key_exchange_response");
    await documented(
      "respondKeyExchange",
      bob.api.respondKeyExchange({ exchangeId: initiated.exchangeId, ephemeralPublicKey: bobEphemeral.publicKeyPem, signature: await signP1363(bob.identity, bobEphemeral.publicKeyPem) }),
    );
    const answer = await response;
    const key = await deriveSessionKey(aliceEphemeral, answer.ephemeralPublicKey);

    // Messages: REST and socket sends, delivery, the receipt, history.
    const sealed = () => encrypt(key, "hello");
    const envelope = async (receiverId: string) => ({
      receiverId,
      ...(await sealed()),
      nonce: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
      timestamp: new Date().toISOString(),
      signature: "c2lnbmF0dXJl",
    });
    const received = documentedEvent(bobSocket, "message_received");
    const delivered = documentedEvent(aliceSocket, "message_delivered");
    // Alice's first device (registration) hears what her second (the login) sends.
    const aliceFirstSocket = await realtimeClient(app, aliceFirstDevice.token!);
    const sentElsewhere = documentedEvent(aliceFirstSocket, "message_sent");
    const sent = await envelope(bob.id);
    await documented("sendMessage", alice.api.sendMessage(sent), "201");
    await received;
    await delivered;
    await sentElsewhere;
    aliceFirstSocket.disconnect();
    expect(await documented("sendMessage", alice.api.sendMessage(sent), "200")).toMatchObject({ duplicate: true }); // a retry
    const reply = documentedEvent(aliceSocket, "message_received");
    const replyBody = await envelope(alice.id);
    documentedAck("send_message", await emitChecked(bobSocket, "send_message", replyBody));
    documentedAck("send_message", await emitChecked(bobSocket, "send_message", replyBody)); // a retry: `duplicate: true`
    documentedAck("send_message", await bobSocket.timeout(10_000).emitWithAck("send_message", { receiverId: alice.id } as never)); // refused: the envelope
    documentedAck("message_ack", await emitChecked(aliceSocket, "message_ack", { messageId: (await reply).id }));
    await documented("getHistory", alice.api.getHistory(bob.id, { limit: 10 }));

    const typing = documentedEvent(aliceSocket, "typing_indicator");
    documentedAck("typing_start", await emitChecked(bobSocket, "typing_start", { contactId: alice.id }));
    await typing;
    documentedAck("typing_stop", await emitChecked(bobSocket, "typing_stop", { contactId: alice.id }));

    // Files.
    const bytes = new TextEncoder().encode("opaque ciphertext bytes");
    const upload = await documented(
      "uploadFile",
      alice.api.uploadFile({ receiverId: bob.id, filename: "a.bin", iv: "aXZpdml2aXZpdml2", authTag: "dGFndGFndGFndGFndGFn", signature: "c2lnbmF0dXJl", encryptedData: new Blob([bytes]) }),
    );
    await documented("getFileMeta", bob.api.getFileMeta(upload.fileId));
    expect(await documented("downloadFile", bob.api.downloadFile(upload.fileId))).toEqual(bytes);
    await documented("deleteFile", alice.api.deleteFile(upload.fileId));
    // One that deletes itself after the receiver's complete download: its uploader is told.
    const once = await documented(
      "uploadFile",
      alice.api.uploadFile({ receiverId: bob.id, filename: "once.bin", iv: "aXZpdml2aXZpdml2", authTag: "dGFndGFndGFndGFndGFn", signature: "c2lnbmF0dXJl", expiresInSeconds: "3600", deleteAfterDownload: "true", encryptedData: new Blob([bytes]) }),
    );
    const deleted = documentedEvent(aliceSocket, "file_deleted");
    expect(await documented("downloadFile", bob.api.downloadFile(once.fileId))).toEqual(bytes);
    expect(await deleted).toEqual({ fileId: once.fileId, reason: "downloaded" });

    // Devices: Alice's second device asks twice to be linked; her first rejects once, then approves.
    await documented("listDevices", alice.api.listDevices());
    const second = await apiClient(app).login({ email: `${alice.username}@example.com`, password: "correct horse battery staple", deviceName: "Phone" });
    const secondApi = apiClient(app, second.token);
    const secondSocket = await realtimeClient(app, second.token);
    const linkRequest = documentedEvent(aliceSocket, "device_link_request");
    const refusedLink = await documented("createLinkRequest", secondApi.createLinkRequest({ ephemeralPublicKey: (await newEphemeral()).publicKeyPem }));
    await linkRequest;
    await documented("listLinkRequests", alice.api.listLinkRequests());
    const linkRejected = documentedEvent(secondSocket, "device_link_rejected");
    await documented("rejectLinkRequest", alice.api.rejectLinkRequest(refusedLink.requestId));
    await linkRejected;
    const linkApproved = documentedEvent(secondSocket, "device_link_approved");
    const link = await requestDeviceLink(secondApi);
    await documented("approveLinkRequest", approveDeviceLink(alice.api, link, alice.identity.keys.privateKey));
    await link.complete(await linkApproved);
    await documented("getLinkRequest", secondApi.getLinkRequest(link.requestId));
    await documented("removeDevice", alice.api.removeDevice(second.deviceId));
    // Key transparency: the log (both registrations merged by the relay's sequencer), a proof, and a key
    // change Bob hears about.
    const head = await documented("getTransparencyHead", waitForHead(2));
    await documented("getTransparencyKey", apiClient(app).getTransparencyKey());
    await documented("getTransparencyHeadAt", apiClient(app).getTransparencyHeadAt(String(head.treeSize)));
    await documented("getTransparencyConsistency", apiClient(app).getTransparencyConsistency({ from: 1, to: head.treeSize }));
    await documented("listTransparencyEntries", apiClient(app).listTransparencyEntries({ start: 0, end: head.treeSize }));
    await documented("getTransparencyProof", bob.api.getTransparencyProof(alice.id));
    const keyChanged = documentedEvent(bobSocket, "key_changed");
    await documented("changeKey", alice.api.changeKey({ publicKey: (await newIdentity()).publicKeyPem, currentPassword: "correct horse battery staple" }));
    await keyChanged;

    // The end of a session. A disappearing message to Bob, now offline, expires undelivered.
    bobSocket.disconnect();
    const expired = documentedEvent(aliceSocket, "message_expired");
    await documented("sendMessage", alice.api.sendMessage({ ...(await envelope(bob.id)), expiresInSeconds: 5 }), "201");
    app.clock.advance(5000);
    await expired;
    await documented("removeContact", alice.api.removeContact(bob.id));
    await documented("blockUser", alice.api.blockUser({ userId: bob.id }));
    expect(await documented("listBlockedUsers", alice.api.listBlockedUsers())).toMatchObject({ users: [{ id: bob.id, username: bob.username }] });
    await documented("unblockUser", alice.api.unblockUser(bob.id));
    await documented("changePassword", bob.api.changePassword({ currentPassword: "correct horse battery staple", newPassword: "another horse battery staple" }));
    await documented("logoutAll", bob.api.logoutAll());
    const ended = documentedEvent(aliceSocket, "auth_error");
    await documented("logout", alice.api.logout());
    await ended;

    expect([...exercised].sort()).toEqual(operationsOf(document).map(({ operation: entry }) => entry.operationId as string).sort());
    const everyEvent = [...Object.keys(document["x-socket-events"].serverToClient), ...Object.entries(document["x-socket-events"].clientToServer).filter(([, spec]) => spec.ack).map(([name]) => `ack:${name}`)];
    expect([...eventsSeen].sort()).toEqual(everyEvent.sort());
  });

  it("when a call fails, then the typed client throws ApiError with the envelope's code, status and field", async () => {
    const error = await apiClient(app).login({ email: "nobody@example.com", password: "wrong password" }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
    const invalid = await apiClient(app).register({ email: "not an email", username: "x_valid", password: "long enough", publicKey: "nope" }).catch((caught: unknown) => caught);
    expect(invalid).toMatchObject({ status: 400, code: "VALIDATION_ERROR", field: "email" });
  });
});
