import { generateKeyPairSync, randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { base64url, claimsOf, newPublicKeyPem, registerUser, startTestApp, type ApiResponse, type TestApp } from "./support/app";
import { expectError } from "./support/expect-error";
import { closeAllSockets, connect, connectAs, nextEvent } from "./support/sockets";

/**
 * Registration, login, login throttling, access tokens, logout and refresh, as a client sees them:
 * the real app over HTTP against the real Firestore emulator.
 */

const USER_ID = /^user_[A-Za-z0-9_-]{20,}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const INVALID_CREDENTIALS = "Invalid email or password";

// ---------------------------------------------------------------------------------------------------
// helpers

function unique(): string {
  return randomBytes(6).toString("hex");
}

/** A valid registration body with a fresh email and username. */
function freshRegistration(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const id = unique();
  return {
    email: `reg_${id}@example.com`,
    username: `reg_${id}`,
    password: "correct horse battery staple",
    publicKey: newPublicKeyPem(),
    ...overrides,
  };
}

function pem(type: string, body: Buffer): string {
  const lines = body.toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${type}-----\n${lines}\n-----END ${type}-----\n`;
}

/** The DER inside a PEM. */
function derOf(pemText: string): Buffer {
  return Buffer.from(pemText.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

const profile = (app: TestApp, token: string) => app.request("GET", "/api/users/profile", { token });
const login = (app: TestApp, email: string, password: string, headers?: Record<string, string>) =>
  app.request("POST", "/api/auth/login", { body: { email, password }, headers });
const refresh = (app: TestApp, refreshToken: unknown) =>
  app.request("POST", "/api/auth/refresh", { body: { refreshToken } });

// ---------------------------------------------------------------------------------------------------

let app: TestApp;

beforeAll(async () => {
  // The per-address login limit is raised: every request here comes from 127.0.0.1, and the throttling
  // stories below run in apps of their own with small limits.
  app = await startTestApp({ LOGIN_IP_LIMIT: "10000" });
});

afterAll(async () => {
  await app?.close();
});

describe("POST /api/auth/register", () => {
  it("when a valid P-256 registration is sent, then 201 with tokens and the new user", async () => {
    const input = freshRegistration();
    const before = Date.now();

    const response = await app.request("POST", "/api/auth/register", { body: input });

    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({
      success: true,
      token: expect.any(String),
      refreshToken: expect.any(String),
    });
    expect(response.body.user).toEqual({
      id: expect.stringMatching(USER_ID),
      email: input.email,
      username: input.username,
      publicKey: input.publicKey,
      createdAt: expect.stringMatching(ISO_UTC),
    });
    const createdAt = Date.parse(response.body.user.createdAt);
    expect(createdAt).toBeGreaterThanOrEqual(before - 1000);
    expect(createdAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(response.body.token.split(".")).toHaveLength(3);
    expect(claimsOf(response.body.token).sub).toBe(response.body.user.id);
  });

  it("when a P-384 key is sent, then it is accepted and returned exactly as sent", async () => {
    const input = freshRegistration({ publicKey: newPublicKeyPem("P-384") });

    const response = await app.request("POST", "/api/auth/register", { body: input });

    expect(response.status).toBe(201);
    expect(response.body.user.publicKey).toBe(input.publicKey);
  });

  it("when the key has CRLF line endings and no final newline, then it is kept byte for byte", async () => {
    const publicKey = newPublicKeyPem().trimEnd().replace(/\n/g, "\r\n");
    const input = freshRegistration({ publicKey });

    const registered = await app.request("POST", "/api/auth/register", { body: input });
    const fetched = await profile(app, registered.body.token);

    expect(registered.status).toBe(201);
    expect(registered.body.user.publicKey).toBe(publicKey);
    expect(fetched.body.user.publicKey).toBe(publicKey);
  });

  it("when the returned token is used at once, then the profile shows the new user with no lastLogin", async () => {
    const input = freshRegistration();
    const registered = await app.request("POST", "/api/auth/register", { body: input });

    const response = await profile(app, registered.body.token);

    expect(response.status).toBe(200);
    expect(response.body.user).toEqual({ ...registered.body.user, lastLogin: null });
  });

  it("when two users register, then they get different ids", async () => {
    const first = await app.request("POST", "/api/auth/register", { body: freshRegistration() });
    const second = await app.request("POST", "/api/auth/register", { body: freshRegistration() });

    expect(first.body.user.id).not.toBe(second.body.user.id);
  });

  it("when a user registers, logs in, refreshes and reads the profile, then no response carries the password or its hash", async () => {
    const input = freshRegistration();
    const registered = await app.request("POST", "/api/auth/register", { body: input });
    const stored = await app.db.collection("users").doc(registered.body.user.id).get();
    const passwordHash = stored.get("passwordHash") as string;
    expect(passwordHash).toMatch(/^\$2[aby]\$/); // the check below is only meaningful if this is the hash

    const loggedIn = await login(app, input.email as string, input.password as string);
    const refreshed = await refresh(app, loggedIn.body.refreshToken);
    const fetched = await profile(app, refreshed.body.token);

    for (const response of [registered, loggedIn, refreshed, fetched]) {
      expect(response.status).toBeLessThan(300);
      const text = JSON.stringify(response.body);
      expect(text).not.toContain(passwordHash);
      expect(text).not.toMatch(/\$2[aby]\$\d\d\$/);
      expect(text).not.toMatch(/passwordHash|password/i);
      expect(text).not.toContain(input.password);
    }
  });

  it("when the email has upper-case letters and spaces around it, then it is stored trimmed and lower-cased", async () => {
    const id = unique();
    const input = freshRegistration({ email: `  Mixed.Case_${id}@Example.COM ` });

    const response = await app.request("POST", "/api/auth/register", { body: input });

    expect(response.status).toBe(201);
    expect(response.body.user.email).toBe(`mixed.case_${id}@example.com`);
  });

  it("when the password is exactly 72 bytes of UTF-8 (36 two-byte characters), then it is accepted", async () => {
    const response = await app.request("POST", "/api/auth/register", {
      body: freshRegistration({ password: "é".repeat(36) }),
    });

    expect(response.status).toBe(201);
  });
});

describe("POST /api/auth/register with bad input", () => {
  const register = (body: unknown) => app.request("POST", "/api/auth/register", { body });
  const fields = ["email", "username", "password", "publicKey"] as const;

  it.each(fields.map((field) => ({ field })))(
    "when $field is missing, then 400 VALIDATION_ERROR naming $field",
    async ({ field }) => {
      const body = freshRegistration();
      delete body[field];

      expectError(await register(body), 400, "VALIDATION_ERROR", field);
    },
  );

  const wrongTypes = [
    { kind: "a number", value: 42 },
    { kind: "null", value: null },
    { kind: "an array", value: ["a@example.com"] },
    { kind: "an object", value: { value: "a@example.com" } },
    { kind: "a boolean", value: true },
  ];
  it.each(fields.flatMap((field) => wrongTypes.map((type) => ({ field, ...type }))))(
    "when $field is $kind, then 400 VALIDATION_ERROR naming $field",
    async ({ field, value }) => {
      expectError(await register(freshRegistration({ [field]: value })), 400, "VALIDATION_ERROR", field);
    },
  );

  const badValues: Array<{ story: string; field: (typeof fields)[number]; value: string }> = [
    { story: "the email is longer than 254 characters", field: "email", value: `${"a".repeat(250)}@example.com` },
    { story: "the email has no @", field: "email", value: "not-an-email" },
    { story: "the email has no domain", field: "email", value: "alice@" },
    { story: "the email has no local part", field: "email", value: "@example.com" },
    { story: "the email has a space inside", field: "email", value: "ali ce@example.com" },
    { story: "the email has two @", field: "email", value: "alice@@example.com" },
    { story: "the email is empty", field: "email", value: "" },
    { story: "the username has 31 characters", field: "username", value: "u".repeat(31) },
    { story: "the username has 2 characters", field: "username", value: "ab" },
    { story: "the username is empty", field: "username", value: "" },
    { story: "the username has a space", field: "username", value: "bad name" },
    { story: "the username has a hyphen", field: "username", value: "bad-name" },
    { story: "the username has a dot", field: "username", value: "bad.name" },
    { story: "the username has a non-ASCII letter", field: "username", value: "naïve_user" },
    { story: "the username has markup", field: "username", value: "<script>" },
    { story: "the username has a trailing newline", field: "username", value: "good_name\n" },
    { story: "the password has 7 characters", field: "password", value: "1234567" },
    { story: "the password is empty", field: "password", value: "" },
    { story: "the password is 73 ASCII bytes", field: "password", value: "p".repeat(73) },
    { story: "the password is 40 two-byte characters (80 bytes)", field: "password", value: "é".repeat(40) },
    { story: "the password is 19 four-byte emoji (76 bytes)", field: "password", value: "😀".repeat(19) },
  ];
  it.each(badValues)("when $story, then 400 VALIDATION_ERROR naming $field", async ({ field, value }) => {
    expectError(await register(freshRegistration({ [field]: value })), 400, "VALIDATION_ERROR", field);
  });

  it("when the password is refused, then the response does not echo it", async () => {
    const password = `secret-${unique()}-`.padEnd(80, "x");

    const response = await register(freshRegistration({ password }));

    expectError(response, 400, "VALIDATION_ERROR", "password");
    expect(JSON.stringify(response.body)).not.toContain(password);
  });

  describe("malformed public keys", () => {
    const validPem = newPublicKeyPem();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const secp256k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    const p521 = generateKeyPairSync("ec", { namedCurve: "secp521r1" });
    const ed25519 = generateKeyPairSync("ed25519");
    const p256 = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const keys: Array<{ story: string; value: string }> = [
      { story: "garbage text", value: "this is not a key" },
      { story: "PEM armor around bytes that are not a key", value: pem("PUBLIC KEY", randomBytes(91)) },
      { story: "PEM armor around invalid base64", value: "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n" },
      { story: "an RSA SPKI key", value: rsa.publicKey.export({ type: "spki", format: "pem" }).toString() },
      { story: "an EC key on secp256k1", value: secp256k1.publicKey.export({ type: "spki", format: "pem" }).toString() },
      { story: "an EC key on P-521", value: p521.publicKey.export({ type: "spki", format: "pem" }).toString() },
      { story: "an Ed25519 key", value: ed25519.publicKey.export({ type: "spki", format: "pem" }).toString() },
      { story: "a PKCS#8 private key", value: p256.privateKey.export({ type: "pkcs8", format: "pem" }).toString() },
      { story: "a SEC1 EC private key", value: p256.privateKey.export({ type: "sec1", format: "pem" }).toString() },
      { story: "a valid key body in CERTIFICATE armor", value: pem("CERTIFICATE", derOf(validPem)) },
      { story: "a valid key body in EC PUBLIC KEY armor", value: pem("EC PUBLIC KEY", derOf(validPem)) },
      { story: "a valid key with text before it", value: `hello\n${validPem}` },
      { story: "a valid key with text after it", value: `${validPem}hello\n` },
      { story: "two valid keys one after the other", value: validPem + newPublicKeyPem() },
      { story: "the bare base64 body without armor", value: derOf(validPem).toString("base64") },
      { story: "a key longer than 1024 characters", value: validPem + "\n".repeat(1024) },
      { story: "an empty string", value: "" },
    ];
    it.each(keys)("when the publicKey is $story, then 400 VALIDATION_ERROR naming publicKey", async ({ value }) => {
      expectError(await register(freshRegistration({ publicKey: value })), 400, "VALIDATION_ERROR", "publicKey");
    });
  });

  describe("bodies that are not a registration object", () => {
    const raw = (rawBody: string, contentType = "application/json") =>
      app.request("POST", "/api/auth/register", { rawBody, headers: { "Content-Type": contentType } });

    it("when the body is a JSON array, then 400 VALIDATION_ERROR naming the body", async () => {
      expectError(await register([freshRegistration()]), 400, "VALIDATION_ERROR", "body");
    });

    it("when the body is a JSON string, then 400 VALIDATION_ERROR", async () => {
      expectError(await raw(JSON.stringify("hello")), 400, "VALIDATION_ERROR", "body");
    });

    it("when the body is JSON null, then 400 VALIDATION_ERROR", async () => {
      expectError(await raw("null"), 400, "VALIDATION_ERROR", "body");
    });

    it("when the body is not valid JSON, then 400 VALIDATION_ERROR", async () => {
      expectError(await raw('{"email": '), 400, "VALIDATION_ERROR", "body");
    });

    it("when there is no body at all, then 400 VALIDATION_ERROR", async () => {
      expectError(await app.request("POST", "/api/auth/register"), 400, "VALIDATION_ERROR", "body");
    });

    it("when the body is form-encoded, then 415 UNSUPPORTED_MEDIA_TYPE", async () => {
      expectError(
        await raw("email=a%40example.com&username=abc", "application/x-www-form-urlencoded"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      );
    });
  });

  describe("duplicates", () => {
    it("when the email is already registered, then 409 EMAIL_TAKEN naming email", async () => {
      const first = freshRegistration();
      await register(first);

      expectError(await register(freshRegistration({ email: first.email })), 409, "EMAIL_TAKEN", "email");
    });

    it("when the email differs from a registered one only in case, then 409 EMAIL_TAKEN", async () => {
      const first = freshRegistration();
      await register(first);

      const shouted = (first.email as string).toUpperCase();
      expectError(await register(freshRegistration({ email: shouted })), 409, "EMAIL_TAKEN", "email");
    });

    it("when the username is already registered, then 409 USERNAME_TAKEN naming username", async () => {
      const first = freshRegistration();
      await register(first);

      expectError(await register(freshRegistration({ username: first.username })), 409, "USERNAME_TAKEN", "username");
    });

    it("when the username differs from a registered one only in case, then 409 USERNAME_TAKEN", async () => {
      const first = freshRegistration();
      await register(first);

      const shouted = (first.username as string).toUpperCase();
      expectError(await register(freshRegistration({ username: shouted })), 409, "USERNAME_TAKEN", "username");
    });

    it("when a duplicate is refused, then the original account still logs in with its own password", async () => {
      const first = freshRegistration();
      await register(first);
      await register(freshRegistration({ email: first.email, password: "another password entirely" }));

      expect((await login(app, first.email as string, "another password entirely")).status).toBe(401);
      expect((await login(app, first.email as string, first.password as string)).status).toBe(200);
    });
  });
});

describe("POST /api/auth/login", () => {
  it("when the credentials are right, then 200 with tokens, the user with lastLogin, and contacts", async () => {
    const user = await registerUser(app);
    const before = Date.now();

    const response = await login(app, user.email, user.password);

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      success: true,
      token: expect.any(String),
      refreshToken: expect.any(String),
      contacts: [],
    });
    expect(response.body.user).toEqual({
      id: user.id,
      email: user.email,
      username: user.username,
      publicKey: user.publicKey,
      createdAt: expect.stringMatching(ISO_UTC),
      lastLogin: expect.stringMatching(ISO_UTC),
    });
    expect(Date.parse(response.body.user.lastLogin)).toBeGreaterThanOrEqual(before - 1000);
  });

  it("when the login token is used, then the profile shows the same lastLogin", async () => {
    const user = await registerUser(app);
    const loggedIn = await login(app, user.email, user.password);

    const response = await profile(app, loggedIn.body.token);

    expect(response.status).toBe(200);
    expect(response.body.user.lastLogin).toBe(loggedIn.body.user.lastLogin);
  });

  it("when the user has a contact, then login lists it with its public key and without its email", async () => {
    const alice = await registerUser(app);
    const bob = await registerUser(app, { publicKey: newPublicKeyPem("P-384") });
    const added = await app.request("POST", "/api/users/add-contact", { token: alice.token, body: { username: bob.username } });
    expect(added.status).toBe(201);

    const response = await login(app, alice.email, alice.password);

    expect(response.status).toBe(200);
    expect(response.body.contacts).toHaveLength(1);
    expect(response.body.contacts[0]).toMatchObject({ id: bob.id, username: bob.username, publicKey: bob.publicKey });
    expect(response.body.contacts[0]).toHaveProperty("lastSeen");
    expect(response.body.contacts[0]).not.toHaveProperty("email");
  });

  it("when the password is wrong or the email is unknown, then both are 401 with the identical answer", async () => {
    const user = await registerUser(app);

    const wrongPassword = await login(app, user.email, "not the right password");
    const unknownEmail = await login(app, `nobody_${unique()}@example.com`, user.password);

    expectError(wrongPassword, 401, "UNAUTHORIZED");
    expectError(unknownEmail, 401, "UNAUTHORIZED");
    expect(wrongPassword.body.error.message).toBe(INVALID_CREDENTIALS);
    expect(unknownEmail.body).toEqual(wrongPassword.body);
  });

  it("when the password is shorter than the registration minimum, then it is simply wrong (401)", async () => {
    const user = await registerUser(app);

    expectError(await login(app, user.email, "short"), 401, "UNAUTHORIZED");
  });

  it("when the email is typed in another case and with spaces, then login succeeds", async () => {
    const user = await registerUser(app);

    const response = await login(app, `  ${user.email.toUpperCase()} `, user.password);

    expect(response.status).toBe(200);
    expect(response.body.user.id).toBe(user.id);
  });

  it("when the password differs only in case, then 401", async () => {
    const user = await registerUser(app);

    expectError(await login(app, user.email, user.password.toUpperCase()), 401, "UNAUTHORIZED");
  });

  it("when a 72-byte password is followed by more characters, then 400 and never a silent truncation", async () => {
    const password = "p".repeat(36) + "é".repeat(18); // 36 + 36 = 72 bytes
    const user = await registerUser(app, { password });
    expect((await login(app, user.email, password)).status).toBe(200);

    const longer = await login(app, user.email, `${password}extra`);
    const longerByOneByte = await login(app, user.email, `${password}!`);

    expectError(longer, 400, "VALIDATION_ERROR", "password");
    expectError(longerByOneByte, 400, "VALIDATION_ERROR", "password");
  });

  it("when the user logs in twice, then each login is its own session with its own refresh token", async () => {
    const user = await registerUser(app);

    const first = await login(app, user.email, user.password);
    const second = await login(app, user.email, user.password);

    expect(first.body.refreshToken).not.toBe(second.body.refreshToken);
    expect(claimsOf(first.body.token).sid).not.toBe(claimsOf(second.body.token).sid);
    expect((await profile(app, first.body.token)).status).toBe(200);
    expect((await profile(app, second.body.token)).status).toBe(200);
  });

  it.each([
    { story: "the email is missing", body: { password: "whatever123" }, field: "email" },
    { story: "the password is missing", body: { email: "a@example.com" }, field: "password" },
    { story: "the password is empty", body: { email: "a@example.com", password: "" }, field: "password" },
    { story: "the password is a number", body: { email: "a@example.com", password: 12345678 }, field: "password" },
    { story: "the email is null", body: { email: null, password: "whatever123" }, field: "email" },
    { story: "the email is malformed", body: { email: "nope", password: "whatever123" }, field: "email" },
    { story: "the body is a JSON array", body: [{ email: "a@example.com", password: "whatever123" }], field: "body" },
  ])("when $story, then 400 VALIDATION_ERROR naming $field", async ({ body, field }) => {
    expectError(await app.request("POST", "/api/auth/login", { body }), 400, "VALIDATION_ERROR", field);
  });
});

describe("login throttling", () => {
  /** Starts apps with the given limits and closes them all after the story. */
  async function withApps(count: number, env: Record<string, string>, story: (...apps: TestApp[]) => Promise<void>) {
    const first = await startTestApp(env);
    const apps = [first];
    try {
      for (let i = 1; i < count; i += 1) apps.push(await startTestApp(env, { projectId: first.projectId }));
      await story(...apps);
    } finally {
      for (const started of apps) await started.close();
    }
  }

  function expectRateLimited(response: ApiResponse, limit: number): void {
    expectError(response, 429, "RATE_LIMITED");
    const retryAfter = Number(response.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(response.headers.get("ratelimit-limit")).toBe(String(limit));
    expect(response.headers.get("ratelimit-remaining")).toBe("0");
    expect(Number(response.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
    expect(response.body.error.details).toMatchObject({ retryAfterSeconds: retryAfter });
  }

  const accountLimit = { LOGIN_ACCOUNT_LIMIT: "3", LOGIN_ACCOUNT_WINDOW_SECONDS: "60" };

  it("when one account has had 3 attempts, then the 4th gets 429 RATE_LIMITED even with the right password", async () => {
    await withApps(1, accountLimit, async (limited) => {
      const user = await registerUser(limited);
      for (let attempt = 0; attempt < 3; attempt += 1) {
        expectError(await login(limited, user.email, "wrong password"), 401, "UNAUTHORIZED");
      }

      const response = await login(limited, user.email, user.password);

      expectRateLimited(response, 3);
      expect(Number(response.headers.get("retry-after"))).toBeLessThanOrEqual(60);
    });
  });

  it("when one account is throttled, then the same account in another case is throttled too and another account is unaffected", async () => {
    await withApps(1, accountLimit, async (limited) => {
      const victim = await registerUser(limited);
      const other = await registerUser(limited);
      for (let attempt = 0; attempt < 3; attempt += 1) await login(limited, victim.email, "wrong password");

      expectRateLimited(await login(limited, victim.email.toUpperCase(), victim.password), 3);
      const otherLogin = await login(limited, other.email, other.password);

      expect(otherLogin.status).toBe(200);
      expect(otherLogin.body.user.id).toBe(other.id);
    });
  });

  it("when the window has passed, then the throttled account can log in again", async () => {
    await withApps(1, accountLimit, async (limited) => {
      const user = await registerUser(limited);
      for (let attempt = 0; attempt < 3; attempt += 1) await login(limited, user.email, "wrong password");
      expectRateLimited(await login(limited, user.email, user.password), 3);

      limited.clock.advance(61_000);

      expect((await login(limited, user.email, user.password)).status).toBe(200);
    });
  });

  it("when attempts on one account are spread over two instances sharing a project, then the limit still holds", async () => {
    await withApps(2, accountLimit, async (instanceA, instanceB) => {
      const user = await registerUser(instanceA);

      expectError(await login(instanceA, user.email, "wrong password"), 401, "UNAUTHORIZED");
      expectError(await login(instanceB, user.email, "wrong password"), 401, "UNAUTHORIZED");
      expectError(await login(instanceA, user.email, "wrong password"), 401, "UNAUTHORIZED");

      expectRateLimited(await login(instanceB, user.email, user.password), 3);
      expectRateLimited(await login(instanceA, user.email, user.password), 3);
    });
  });

  const ipLimit = { LOGIN_IP_LIMIT: "3", LOGIN_IP_WINDOW_SECONDS: "60" };

  it("when one address has made 3 attempts on different accounts, then its 4th gets 429 even for a valid login", async () => {
    await withApps(1, ipLimit, async (limited) => {
      const user = await registerUser(limited);
      for (let attempt = 0; attempt < 3; attempt += 1) {
        expectError(await login(limited, `sprayed_${attempt}_${unique()}@example.com`, "password1"), 401, "UNAUTHORIZED");
      }

      expectRateLimited(await login(limited, user.email, user.password), 3);
    });
  });

  it("when the client rotates X-Forwarded-For without a trusted proxy, then the address limit still holds", async () => {
    await withApps(1, ipLimit, async (limited) => {
      const user = await registerUser(limited);
      for (let attempt = 0; attempt < 3; attempt += 1) {
        await login(limited, `sprayed_${attempt}_${unique()}@example.com`, "password1", {
          "X-Forwarded-For": `198.51.100.${attempt + 1}`,
        });
      }

      const response = await login(limited, user.email, user.password, { "X-Forwarded-For": "198.51.100.99" });

      expectRateLimited(response, 3);
    });
  });

  it("when behind a trusted proxy one address is throttled, then another address is unaffected", async () => {
    await withApps(1, { ...ipLimit, TRUST_PROXY: "1" }, async (limited) => {
      const user = await registerUser(limited);
      const sprayer = { "X-Forwarded-For": "203.0.113.7" };
      for (let attempt = 0; attempt < 3; attempt += 1) {
        await login(limited, `sprayed_${attempt}_${unique()}@example.com`, "password1", sprayer);
      }
      expectRateLimited(await login(limited, user.email, user.password, sprayer), 3);

      const fromElsewhere = await login(limited, user.email, user.password, { "X-Forwarded-For": "203.0.113.8" });

      expect(fromElsewhere.status).toBe(200);
    });
  });

  it("when an attacker at another address keeps failing on an account, then the attacker is throttled and the owner still logs in", async () => {
    await withApps(1, { ...accountLimit, TRUST_PROXY: "1" }, async (limited) => {
      const victim = await registerUser(limited);
      const attacker = { "X-Forwarded-For": "203.0.113.66" };
      const owner = { "X-Forwarded-For": "198.51.100.20" };
      for (let attempt = 0; attempt < 3; attempt += 1) {
        expectError(await login(limited, victim.email, "wrong password", attacker), 401, "UNAUTHORIZED");
      }
      expectRateLimited(await login(limited, victim.email, "another guess", attacker), 3);
      expectRateLimited(await login(limited, victim.email, victim.password, attacker), 3);

      const ownLogin = await login(limited, victim.email, victim.password, owner);

      expect(ownLogin.status, JSON.stringify(ownLogin.body)).toBe(200);
      expect(ownLogin.body.user.id).toBe(victim.id);
    });
  });

  it("when failures on one account come from many addresses, then the account-wide ceiling throttles every address", async () => {
    const ceiling = { LOGIN_ACCOUNT_CEILING_LIMIT: "4", LOGIN_ACCOUNT_CEILING_WINDOW_SECONDS: "60", TRUST_PROXY: "1" };
    await withApps(1, ceiling, async (limited) => {
      const victim = await registerUser(limited);
      for (let attempt = 0; attempt < 4; attempt += 1) {
        const from = { "X-Forwarded-For": `203.0.113.${attempt + 1}` };
        expectError(await login(limited, victim.email, "wrong password", from), 401, "UNAUTHORIZED");
      }

      expectRateLimited(await login(limited, victim.email, victim.password, { "X-Forwarded-For": "198.51.100.20" }), 4);
    });
  });

  it("when attempts from one address are spread over two instances sharing a project, then the address limit still holds", async () => {
    await withApps(2, ipLimit, async (instanceA, instanceB) => {
      const user = await registerUser(instanceA);
      await login(instanceA, `sprayed_a_${unique()}@example.com`, "password1");
      await login(instanceB, `sprayed_b_${unique()}@example.com`, "password1");
      await login(instanceA, `sprayed_c_${unique()}@example.com`, "password1");

      expectRateLimited(await login(instanceB, user.email, user.password), 3);
    });
  });

  it("when a login body is invalid, then it is refused with 400 before it counts against the limit", async () => {
    await withApps(1, accountLimit, async (limited) => {
      const user = await registerUser(limited);
      for (let attempt = 0; attempt < 5; attempt += 1) {
        expectError(await login(limited, user.email, "x".repeat(80)), 400, "VALIDATION_ERROR", "password");
      }

      expect((await login(limited, user.email, user.password)).status).toBe(200);
    });
  });
});

describe("access tokens on GET /api/users/profile", () => {
  let alice: Awaited<ReturnType<typeof registerUser>>;
  let bob: Awaited<ReturnType<typeof registerUser>>;

  beforeAll(async () => {
    alice = await registerUser(app);
    bob = await registerUser(app);
  });

  /** A token with alice's real session, signed by us with the given changes. */
  function forge(
    changes: {
      secret?: jwt.Secret;
      algorithm?: jwt.Algorithm;
      audience?: string;
      issuer?: string;
      subject?: string;
      sid?: string | null;
      /** Leave `exp` out. */
      noExpiry?: boolean;
    } = {},
  ): string {
    const { jwt: jwtConfig } = app.config;
    const sid = changes.sid === undefined ? claimsOf(alice.token).sid : changes.sid;
    return jwt.sign(sid === null ? {} : { sid }, changes.secret ?? jwtConfig.secret, {
      algorithm: changes.algorithm ?? "HS256",
      audience: changes.audience ?? jwtConfig.audience,
      issuer: changes.issuer ?? jwtConfig.issuer,
      subject: changes.subject ?? alice.id,
      ...(changes.noExpiry ? {} : { expiresIn: 60 }),
    });
  }

  it("when the token is valid, then 200 with the caller's own profile", async () => {
    const response = await profile(app, alice.token);

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true, user: { id: alice.id, email: alice.email } });
  });

  it("when a token is signed with the right secret, claims and algorithm, then it is accepted (control for the forgeries below)", async () => {
    const response = await profile(app, forge());

    expect(response.status).toBe(200);
    expect(response.body.user.id).toBe(alice.id);
  });

  it("when there is no Authorization header, then 401 UNAUTHORIZED", async () => {
    expectError(await app.request("GET", "/api/users/profile"), 401, "UNAUTHORIZED");
  });

  it.each([
    { story: '"Bearer " with nothing after it', header: "Bearer " },
    { story: '"Bearer" alone', header: "Bearer" },
    { story: "a Basic credential", header: "Basic YWxpY2U6c2VjcmV0" },
    { story: "the token without the Bearer scheme", header: "__TOKEN__" },
  ])("when the Authorization header is $story, then 401 UNAUTHORIZED", async ({ header }) => {
    const value = header === "__TOKEN__" ? alice.token : header;

    expectError(await app.request("GET", "/api/users/profile", { headers: { Authorization: value } }), 401, "UNAUTHORIZED");
  });

  it.each([
    { story: "not a JWT", token: "not-a-jwt" },
    { story: "three dots of nothing", token: ".." },
    { story: "base64 garbage in three parts", token: "aGVsbG8.d29ybGQ.Zm9v" },
    { story: "longer than 4096 characters", token: "a".repeat(5000) },
  ])("when the bearer token is $story, then 401 UNAUTHORIZED", async ({ token }) => {
    expectError(await profile(app, token), 401, "UNAUTHORIZED");
  });

  it("when the payload is changed to another user's id and the signature kept, then 401 and no one's profile", async () => {
    const [header, payload, signature] = alice.token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const tampered = `${header}.${base64url({ ...claims, sub: bob.id })}.${signature}`;

    const response = await profile(app, tampered);

    expectError(response, 401, "UNAUTHORIZED");
    expect(JSON.stringify(response.body)).not.toContain(bob.email);
  });

  it("when the token is signed with another secret, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ secret: "another-secret-that-is-long-enough-9876543210" })), 401, "UNAUTHORIZED");
  });

  it("when the token says alg none and has no signature, then 401 UNAUTHORIZED", async () => {
    const claims = claimsOf(alice.token);
    const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`;

    expectError(await profile(app, unsigned), 401, "UNAUTHORIZED");
  });

  it("when the token says alg none but keeps the original signature, then 401 UNAUTHORIZED", async () => {
    const [, payload, signature] = alice.token.split(".");

    expectError(await profile(app, `${base64url({ alg: "none", typ: "JWT" })}.${payload}.${signature}`), 401, "UNAUTHORIZED");
  });

  it("when the token has the wrong audience, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ audience: "some-other-service" })), 401, "UNAUTHORIZED");
  });

  it("when the token has the wrong issuer, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ issuer: "someone-else" })), 401, "UNAUTHORIZED");
  });

  it("when the token is signed with HS512 and the right secret, then 401 (the algorithm is pinned)", async () => {
    expectError(await profile(app, forge({ algorithm: "HS512" })), 401, "UNAUTHORIZED");
  });

  it("when the token is signed with HS384 and the right secret, then 401 (the algorithm is pinned)", async () => {
    expectError(await profile(app, forge({ algorithm: "HS384" })), 401, "UNAUTHORIZED");
  });

  it("when the token is signed with RS256, then 401 (the algorithm is pinned)", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });

    expectError(await profile(app, forge({ algorithm: "RS256", secret: privateKey })), 401, "UNAUTHORIZED");
  });

  it("when a correctly signed token for a live session has no exp, then 401 UNAUTHORIZED (a token never expires otherwise)", async () => {
    const endless = forge({ noExpiry: true });
    expect(claimsOf(endless).exp).toBeUndefined();

    expectError(await profile(app, endless), 401, "UNAUTHORIZED");
  });

  it("when a token without exp is presented to the relay, then auth_error and no socket", async () => {
    const relayed = await startTestApp({}, { relay: {} });
    try {
      const user = await registerUser(relayed);
      const { jwt: jwtConfig } = relayed.config;
      const endless = jwt.sign({ sid: claimsOf(user.token).sid }, jwtConfig.secret, {
        algorithm: "HS256",
        audience: jwtConfig.audience,
        issuer: jwtConfig.issuer,
        subject: user.id,
      });
      const socket = connect(relayed, { token: endless });

      expect(await nextEvent(socket, "auth_error")).toMatchObject({ code: "UNAUTHORIZED" });
    } finally {
      closeAllSockets();
      await relayed.close();
    }
  });

  it("when a correctly signed token names no session, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ sid: null })), 401, "UNAUTHORIZED");
  });

  it("when a correctly signed token names a session that does not exist, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ sid: `sess_${randomBytes(18).toString("base64url")}` })), 401, "UNAUTHORIZED");
  });

  it("when a correctly signed token pairs alice's session with bob's id, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, forge({ subject: bob.id })), 401, "UNAUTHORIZED");
  });

  it("when the refresh token is presented as an access token, then 401 UNAUTHORIZED", async () => {
    expectError(await profile(app, alice.refreshToken), 401, "UNAUTHORIZED");
  });
});

describe("access token expiry", () => {
  let clocked: TestApp;
  beforeAll(async () => {
    // An app of its own: moving its clock would expire every other story's tokens.
    clocked = await startTestApp();
  });
  afterAll(async () => {
    await clocked?.close();
  });

  it("when the access token's lifetime has passed, then 401 TOKEN_EXPIRED, and a refresh gives a working token", async () => {
    const user = await registerUser(clocked);
    const ttlSeconds = clocked.config.jwt.accessTokenTtlSeconds;
    clocked.clock.advance((ttlSeconds - 10) * 1000);
    expect((await profile(clocked, user.token)).status).toBe(200);

    clocked.clock.advance(11_000);
    const expired = await profile(clocked, user.token);
    const refreshed = await refresh(clocked, user.refreshToken);

    expectError(expired, 401, "TOKEN_EXPIRED");
    expect(refreshed.status).toBe(200);
    expect((await profile(clocked, refreshed.body.token)).status).toBe(200);
  });

  it("when an expired token is also forged with another secret, then 401 UNAUTHORIZED, not TOKEN_EXPIRED", async () => {
    const user = await registerUser(clocked);
    const { jwt: jwtConfig } = clocked.config;
    const forged = jwt.sign({ sid: claimsOf(user.token).sid }, "another-secret-that-is-long-enough-9876543210", {
      algorithm: "HS256",
      audience: jwtConfig.audience,
      issuer: jwtConfig.issuer,
      subject: user.id,
      expiresIn: 1,
    });
    clocked.clock.advance(5_000);

    expectError(await profile(clocked, forged), 401, "UNAUTHORIZED");
  });
});

describe("POST /api/auth/logout", () => {
  const logout = (token?: string) => app.request("POST", "/api/auth/logout", { token });

  it("when a user logs out, then 200 with the confirmation message", async () => {
    const user = await registerUser(app);

    const response = await logout(user.token);

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ success: true, message: "Logged out successfully" });
  });

  it("when a user has logged out, then the same access token is refused at once", async () => {
    const user = await registerUser(app);
    expect((await profile(app, user.token)).status).toBe(200);

    await logout(user.token);

    expectError(await profile(app, user.token), 401, "UNAUTHORIZED");
    expectError(await logout(user.token), 401, "UNAUTHORIZED");
  });

  it("when a user has logged out, then that session's refresh token no longer works", async () => {
    const user = await registerUser(app);

    await logout(user.token);

    expectError(await refresh(app, user.refreshToken), 401, "UNAUTHORIZED");
  });

  it("when one session logs out, then the user's other sessions keep working", async () => {
    const user = await registerUser(app);
    const other = await login(app, user.email, user.password);

    await logout(user.token);

    expect((await profile(app, other.body.token)).status).toBe(200);
    const refreshed = await refresh(app, other.body.refreshToken);
    expect(refreshed.status).toBe(200);
    expect((await profile(app, refreshed.body.token)).status).toBe(200);
  });

  it("when logout is called without a token, then 401 UNAUTHORIZED", async () => {
    expectError(await logout(), 401, "UNAUTHORIZED");
  });

  it("when logout is called with a forged token, then 401 and the real session survives", async () => {
    const user = await registerUser(app);
    const forged = jwt.sign({ sid: claimsOf(user.token).sid }, "another-secret-that-is-long-enough-9876543210", {
      algorithm: "HS256",
      audience: app.config.jwt.audience,
      issuer: app.config.jwt.issuer,
      subject: user.id,
      expiresIn: 60,
    });

    expectError(await logout(forged), 401, "UNAUTHORIZED");
    expect((await profile(app, user.token)).status).toBe(200);
  });
});

describe("POST /api/auth/refresh", () => {
  it("when a valid refresh token is sent, then a new access token and a new refresh token come back, and the new token works", async () => {
    const user = await registerUser(app);
    app.clock.advance(2_000); // so the new access token's expiry is visibly later

    const response = await refresh(app, user.refreshToken);

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true, token: expect.any(String), refreshToken: expect.any(String) });
    expect(response.body.refreshToken).not.toBe(user.refreshToken);
    expect(response.body.token).not.toBe(user.token);
    const before = claimsOf(user.token);
    const after = claimsOf(response.body.token);
    expect(after).toMatchObject({ sub: user.id, sid: before.sid });
    expect(after.exp!).toBeGreaterThan(before.exp!);
    const fetched = await profile(app, response.body.token);
    expect(fetched.status).toBe(200);
    expect(fetched.body.user.id).toBe(user.id);
  });

  it("when refresh tokens are rotated several times in a row, then each new one works once", async () => {
    const user = await registerUser(app);

    const first = await refresh(app, user.refreshToken);
    const second = await refresh(app, first.body.refreshToken);
    const third = await refresh(app, second.body.refreshToken);

    expect([first.status, second.status, third.status]).toEqual([200, 200, 200]);
    expect((await profile(app, third.body.token)).status).toBe(200);
  });

  it("when an old refresh token is reused, then 401, the rotated one is refused too, and the session's access tokens die", async () => {
    const user = await registerUser(app);
    const rotated = await refresh(app, user.refreshToken);
    expect(rotated.status).toBe(200);

    const reused = await refresh(app, user.refreshToken);

    expectError(reused, 401, "UNAUTHORIZED");
    expectError(await refresh(app, rotated.body.refreshToken), 401, "UNAUTHORIZED");
    expectError(await profile(app, rotated.body.token), 401, "UNAUTHORIZED");
    expectError(await profile(app, user.token), 401, "UNAUTHORIZED");
  });

  it("when a secret the session replaced two rotations ago is reused, then the session is revoked", async () => {
    const user = await registerUser(app);
    const first = await refresh(app, user.refreshToken);
    const second = await refresh(app, first.body.refreshToken);
    expect([first.status, second.status]).toEqual([200, 200]);

    expectError(await refresh(app, user.refreshToken), 401, "UNAUTHORIZED");

    expectError(await refresh(app, second.body.refreshToken), 401, "UNAUTHORIZED");
    expectError(await profile(app, second.body.token), 401, "UNAUTHORIZED");
  });

  it("when someone presents the session id (from an access token's sid) with a secret it never issued, then 401 and the session lives on", async () => {
    const user = await registerUser(app);
    const sid = claimsOf(user.token).sid as string;
    expect(user.refreshToken.startsWith(`${sid}.`)).toBe(true);

    for (let attempt = 0; attempt < 3; attempt += 1) {
      expectError(await refresh(app, `${sid}.${randomBytes(32).toString("base64url")}`), 401, "UNAUTHORIZED");
    }

    expect((await profile(app, user.token)).status).toBe(200);
    const refreshed = await refresh(app, user.refreshToken);
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect((await profile(app, refreshed.body.token)).status).toBe(200);
  });

  it("when a session is revoked for reuse, then the user's other sessions keep working", async () => {
    const user = await registerUser(app);
    const other = await login(app, user.email, user.password);
    await refresh(app, user.refreshToken);

    await refresh(app, user.refreshToken);

    expect((await profile(app, other.body.token)).status).toBe(200);
    expect((await refresh(app, other.body.refreshToken)).status).toBe(200);
  });

  it.each([
    { story: "a number", value: 12345 },
    { story: "null", value: null },
    { story: "an array", value: ["sess_x.y"] },
    { story: "an object", value: { token: "sess_x.y" } },
    { story: "empty", value: "" },
    { story: "longer than 512 characters", value: `sess_${"a".repeat(24)}.${"b".repeat(600)}` },
  ])("when the refresh token is $story, then 400 VALIDATION_ERROR naming refreshToken", async ({ value }) => {
    expectError(await refresh(app, value), 400, "VALIDATION_ERROR", "refreshToken");
  });

  it("when the refreshToken field is missing, then 400 VALIDATION_ERROR naming refreshToken", async () => {
    expectError(await app.request("POST", "/api/auth/refresh", { body: {} }), 400, "VALIDATION_ERROR", "refreshToken");
  });

  it("when the body is a JSON array, then 400 VALIDATION_ERROR", async () => {
    expectError(await app.request("POST", "/api/auth/refresh", { body: [] }), 400, "VALIDATION_ERROR", "body");
  });

  it.each([
    { story: "without a dot", value: "garbage" },
    { story: "garbage on both sides of a dot", value: "garbage.garbage" },
    { story: "a dot and nothing else", value: "." },
    { story: "a session id and an empty secret", value: `sess_${"a".repeat(24)}.` },
    { story: "an empty session id", value: ".secret" },
    { story: "three parts", value: `sess_${"a".repeat(24)}.secret.extra` },
    { story: "an unknown session id", value: `sess_${randomBytes(18).toString("base64url")}.${randomBytes(32).toString("base64url")}` },
    { story: "a user id in place of a session id", value: `user_${"a".repeat(24)}.secret` },
    { story: "a path in place of a session id", value: "../users/x.secret" },
    { story: "non-ASCII text", value: "séssion.sécret" },
  ])("when the refresh token is $story, then 401 UNAUTHORIZED and never 500", async ({ value }) => {
    expectError(await refresh(app, value), 401, "UNAUTHORIZED");
  });

  it("when an access token is sent as the refresh token, then 401 UNAUTHORIZED", async () => {
    const user = await registerUser(app);

    expectError(await refresh(app, user.token), 401, "UNAUTHORIZED");
  });
});

describe("the absolute session lifetime", () => {
  let clocked: TestApp;
  const HOUR = 3_600_000;
  beforeAll(async () => {
    // A session lives an hour past its last refresh, and two hours at most.
    clocked = await startTestApp({ REFRESH_TOKEN_TTL_SECONDS: "3600", SESSION_MAX_AGE_SECONDS: "7200" });
  });
  afterAll(async () => {
    await clocked?.close();
  });

  it("when a session keeps refreshing, then refresh never takes it past its maximum age from login", async () => {
    const user = await registerUser(clocked);
    clocked.clock.advance(0.8 * HOUR);
    const first = await refresh(clocked, user.refreshToken);
    clocked.clock.advance(0.9 * HOUR); // 1.7 h: within an hour of the last refresh
    const second = await refresh(clocked, first.body.refreshToken);
    expect([first.status, second.status]).toEqual([200, 200]);

    clocked.clock.advance(0.35 * HOUR); // 2.05 h: within an hour of the last refresh, past two hours from login

    expectError(await refresh(clocked, second.body.refreshToken), 401, "UNAUTHORIZED");
    const again = await login(clocked, user.email, user.password);
    expect(again.status).toBe(200);
    expect((await refresh(clocked, again.body.refreshToken)).status).toBe(200);
  });
});

describe("ending sessions: POST /api/auth/logout-all and /change-password", () => {
  let relayed: TestApp;
  beforeAll(async () => {
    relayed = await startTestApp({ LOGIN_IP_LIMIT: "10000" }, { relay: {} });
  });
  afterAll(async () => {
    closeAllSockets();
    await relayed?.close();
  });

  const logoutAll = (token?: string) => relayed.request("POST", "/api/auth/logout-all", { token });
  const changePassword = (token: string, body: unknown, headers?: Record<string, string>) =>
    relayed.request("POST", "/api/auth/change-password", { token, body, headers });

  /** A user signed in three times: the registration's session and two logins, each with a socket. */
  async function signedInThrice() {
    const user = await registerUser(relayed);
    const sessions = [{ token: user.token, refreshToken: user.refreshToken }];
    for (let i = 0; i < 2; i += 1) {
      const response = await login(relayed, user.email, user.password);
      sessions.push({ token: response.body.token, refreshToken: response.body.refreshToken });
    }
    const sockets = await Promise.all(sessions.map((session) => connectAs(relayed, session.token)));
    return { user, sessions, sockets };
  }

  it("when a user logs out everywhere, then 200 with the count, and every token, refresh token and socket of the user is refused at once", async () => {
    const { user, sessions, sockets } = await signedInThrice();
    const bystander = await registerUser(relayed);
    const ended = sockets.map((socket) => nextEvent(socket, "auth_error"));
    const gone = sockets.map((socket) => nextEvent(socket, "disconnect"));

    const response = await logoutAll(sessions[1]!.token);

    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body).toEqual({ success: true, revokedSessions: 3 });
    for (const session of sessions) {
      expectError(await profile(relayed, session.token), 401, "UNAUTHORIZED");
      expectError(await refresh(relayed, session.refreshToken), 401, "UNAUTHORIZED");
    }
    expect(await Promise.all(ended)).toEqual(sockets.map(() => expect.objectContaining({ code: "UNAUTHORIZED" })));
    await Promise.all(gone);
    expect((await profile(relayed, bystander.token)).status).toBe(200);
    expect((await login(relayed, user.email, user.password)).status).toBe(200);
  });

  it("when logout-all is called without a valid token, then 401 and no session ends", async () => {
    const user = await registerUser(relayed);

    expectError(await logoutAll(), 401, "UNAUTHORIZED");
    expectError(await logoutAll("not-a-token"), 401, "UNAUTHORIZED");

    expect((await profile(relayed, user.token)).status).toBe(200);
  });

  it("when a user changes the password, then 200, the caller's session stays, every other session and its socket ends", async () => {
    const { user, sessions, sockets } = await signedInThrice();
    const [own, ...others] = sessions;
    const [ownSocket, ...otherSockets] = sockets;
    const ended = otherSockets.map((socket) => nextEvent(socket, "auth_error"));
    const ownErrors: unknown[] = [];
    ownSocket!.on("auth_error", (payload: unknown) => ownErrors.push(payload));

    const response = await changePassword(own!.token, { currentPassword: user.password, newPassword: "a brand new passphrase" });

    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body).toEqual({ success: true });
    expect(await Promise.all(ended)).toEqual(otherSockets.map(() => expect.objectContaining({ code: "UNAUTHORIZED" })));
    for (const session of others) {
      expectError(await profile(relayed, session!.token), 401, "UNAUTHORIZED");
      expectError(await refresh(relayed, session!.refreshToken), 401, "UNAUTHORIZED");
    }
    expect((await profile(relayed, own!.token)).status).toBe(200);
    expect((await refresh(relayed, own!.refreshToken)).status).toBe(200);
    expect(ownSocket!.connected).toBe(true);
    expect(ownErrors).toEqual([]);
    expectError(await login(relayed, user.email, user.password), 401, "UNAUTHORIZED");
    expect((await login(relayed, user.email, "a brand new passphrase")).status).toBe(200);
  });

  it("when the current password is wrong, then 401 UNAUTHORIZED and nothing changes", async () => {
    const user = await registerUser(relayed);
    const other = await login(relayed, user.email, user.password);

    const response = await changePassword(user.token, { currentPassword: "not my password", newPassword: "a brand new passphrase" });

    expectError(response, 401, "UNAUTHORIZED");
    expect((await profile(relayed, user.token)).status).toBe(200);
    expect((await profile(relayed, other.body.token)).status).toBe(200);
    expect((await login(relayed, user.email, user.password)).status).toBe(200);
  });

  it.each([
    { story: "the new password is too short", body: { currentPassword: "correct horse battery staple", newPassword: "short" }, field: "newPassword" },
    { story: "the new password is over 72 bytes", body: { currentPassword: "correct horse battery staple", newPassword: "é".repeat(37) }, field: "newPassword" },
    { story: "the new password is missing", body: { currentPassword: "correct horse battery staple" }, field: "newPassword" },
    { story: "the current password is missing", body: { newPassword: "a brand new passphrase" }, field: "currentPassword" },
  ])("when $story, then 400 VALIDATION_ERROR naming $field and the password is unchanged", async ({ body, field }) => {
    const user = await registerUser(relayed);

    expectError(await changePassword(user.token, body), 400, "VALIDATION_ERROR", field);

    expect((await login(relayed, user.email, user.password)).status).toBe(200);
  });

  it("when change-password is called without a token, then 401", async () => {
    expectError(
      await relayed.request("POST", "/api/auth/change-password", { body: { currentPassword: "x", newPassword: "a brand new passphrase" } }),
      401,
      "UNAUTHORIZED",
    );
  });

  it("when wrong current passwords reach the login limit, then change-password and login from that address are 429", async () => {
    const limited = await startTestApp({ LOGIN_ACCOUNT_LIMIT: "3", LOGIN_ACCOUNT_WINDOW_SECONDS: "60" });
    try {
      const user = await registerUser(limited);
      const change = (currentPassword: string) =>
        limited.request("POST", "/api/auth/change-password", { token: user.token, body: { currentPassword, newPassword: "a brand new passphrase" } });
      for (let attempt = 0; attempt < 3; attempt += 1) expectError(await change(`guess number ${attempt}`), 401, "UNAUTHORIZED");

      const throttled = await change(user.password);
      const loginAfter = await login(limited, user.email, user.password);

      expectError(throttled, 429, "RATE_LIMITED");
      expect(Number(throttled.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expectError(loginAfter, 429, "RATE_LIMITED");
    } finally {
      await limited.close();
    }
  });
});
