import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { expectError } from "./support/expect-error";

/**
 * The users endpoints as a client sees them: profile, contacts (add, list, remove) and search.
 * Every test registers users of its own, with usernames of its own, so tests never depend on each other.
 */

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(async () => {
  await app.close();
});

/** A username nobody else in this file has: `stem` followed by random hex (3-30 characters in all). */
function uniqueUsername(stem = "u"): string {
  return `${stem}${randomBytes(5).toString("hex")}`.slice(0, 30);
}

function addContact(user: RegisteredUser, username: unknown) {
  return app.request("POST", "/api/users/add-contact", { token: user.token, body: { username } });
}

function listContacts(user: RegisteredUser) {
  return app.request("GET", "/api/users/contacts", { token: user.token });
}

function search(user: RegisteredUser, query: string) {
  return app.request("GET", `/api/users/search?${query}`, { token: user.token });
}

async function login(user: RegisteredUser) {
  const response = await app.request("POST", "/api/auth/login", { body: { email: user.email, password: user.password } });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response;
}

describe("GET /api/users/profile", () => {
  it("when a freshly registered user asks for the profile, then it is their own, with lastLogin still null", async () => {
    const alice = await registerUser(app);
    const response = await app.request("GET", "/api/users/profile", { token: alice.token });

    expect(response.status).toBe(200);
    expect(Object.keys(response.body.user).sort()).toEqual(["createdAt", "email", "id", "lastLogin", "publicKey", "username"]);
    expect(response.body.user).toEqual({
      id: alice.id,
      email: alice.email,
      username: alice.username,
      publicKey: alice.publicKey,
      createdAt: expect.stringMatching(ISO_UTC),
      lastLogin: null,
    });
  });

  it("when the user has logged in, then lastLogin is the login time as ISO 8601 UTC", async () => {
    const alice = await registerUser(app);
    const before = Date.now();
    const { body } = await login(alice);

    const response = await app.request("GET", "/api/users/profile", { token: body.token });

    expect(response.status).toBe(200);
    expect(response.body.user.lastLogin).toMatch(ISO_UTC);
    expect(Date.parse(response.body.user.lastLogin)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(response.body.user.lastLogin)).toBeGreaterThanOrEqual(Date.parse(response.body.user.createdAt));
    expect(response.body.user.lastLogin).toBe(body.user.lastLogin);
  });

  it("when the profile is returned, then no password hash appears anywhere in it", async () => {
    const alice = await registerUser(app);
    const response = await app.request("GET", "/api/users/profile", { token: alice.token });

    const text = JSON.stringify(response.body);
    expect(text).not.toMatch(/passwordHash/i);
    expect(text).not.toMatch(/\$2[aby]\$/); // a bcrypt hash
    expect(text).not.toContain(alice.password);
  });
});

describe("POST /api/users/add-contact", () => {
  it("when a user adds another by username, then 201 with the contact's id, username, public key and addedAt", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const before = Date.now();

    const response = await addContact(alice, bob.username);

    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      success: true,
      contact: { id: bob.id, username: bob.username, publicKey: bob.publicKey, addedAt: expect.stringMatching(ISO_UTC) },
    });
    expect(Date.parse(response.body.contact.addedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(response.body.contact.addedAt)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it("when the username is given in another case, then the user is still found and shown with their own spelling", async () => {
    const alice = await registerUser(app);
    const bob = await registerUser(app, { username: uniqueUsername("MixedCase_") });

    const response = await addContact(alice, bob.username.toUpperCase());

    expect(response.status).toBe(201);
    expect(response.body.contact).toMatchObject({ id: bob.id, username: bob.username });
  });

  it("when no user has that username, then 404 NOT_FOUND", async () => {
    const alice = await registerUser(app);
    const response = await addContact(alice, uniqueUsername("nobody_"));
    expectError(response, 404, "NOT_FOUND");
  });

  it("when a user tries to add themselves (in any case), then 400 VALIDATION_ERROR naming username", async () => {
    const alice = await registerUser(app, { username: uniqueUsername("Self_") });

    expectError(await addContact(alice, alice.username), 400, "VALIDATION_ERROR", "username");
    expectError(await addContact(alice, alice.username.toLowerCase()), 400, "VALIDATION_ERROR", "username");
    expect((await listContacts(alice)).body.contacts).toEqual([]);
  });

  it("when the same contact is added twice (even in another case), then 409 ALREADY_EXISTS and the list holds it once", async () => {
    const alice = await registerUser(app);
    const bob = await registerUser(app, { username: uniqueUsername("Twice_") });
    expect((await addContact(alice, bob.username)).status).toBe(201);

    expectError(await addContact(alice, bob.username), 409, "ALREADY_EXISTS");
    expectError(await addContact(alice, bob.username.toLowerCase()), 409, "ALREADY_EXISTS");

    const contacts = (await listContacts(alice)).body.contacts;
    expect(contacts.map((contact: { id: string }) => contact.id)).toEqual([bob.id]);
  });

  it.each([
    ["too short", "ab"],
    ["too long", "a".repeat(31)],
    ["with a space", "bad name"],
    ["with a hyphen", "bad-name"],
    ["with a slash", "a/b"],
    ["with non-ASCII letters", "ünïcode"],
    ["empty", ""],
  ])("when the username is %s, then 400 VALIDATION_ERROR naming username", async (_label, username) => {
    const alice = await registerUser(app);
    expectError(await addContact(alice, username), 400, "VALIDATION_ERROR", "username");
  });

  it.each([
    ["missing", {}],
    ["a number", { username: 12345 }],
    ["null", { username: null }],
    ["an array", { username: ["bob_smith"] }],
    ["an object", { username: { $gt: "" } }],
  ])("when username is %s, then 400 VALIDATION_ERROR naming username", async (_label, body) => {
    const alice = await registerUser(app);
    const response = await app.request("POST", "/api/users/add-contact", { token: alice.token, body });
    expectError(response, 400, "VALIDATION_ERROR", "username");
  });

  it("when the body is not an object at all, then 400 VALIDATION_ERROR, not 500", async () => {
    const alice = await registerUser(app);
    const response = await app.request("POST", "/api/users/add-contact", { token: alice.token, body: ["bob"] });
    expectError(response, 400, "VALIDATION_ERROR");
  });
});

describe("GET /api/users/contacts", () => {
  it("when a user has added nobody, then the list is empty", async () => {
    const alice = await registerUser(app);
    const response = await listContacts(alice);
    expect(response.status).toBe(200);
    expect(response.body.contacts).toEqual([]);
  });

  it("when a user has added two people, then both are listed in the order they were added, offline, with public keys", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const addedBob = (await addContact(alice, bob.username)).body.contact;
    const addedCarol = (await addContact(alice, carol.username)).body.contact;

    const response = await listContacts(alice);

    expect(response.status).toBe(200);
    expect(response.body.contacts).toEqual([
      { id: bob.id, username: bob.username, publicKey: bob.publicKey, addedAt: addedBob.addedAt, lastSeen: null, isOnline: false },
      { id: carol.id, username: carol.username, publicKey: carol.publicKey, addedAt: addedCarol.addedAt, lastSeen: null, isOnline: false },
    ]);
    for (const contact of response.body.contacts) {
      expect(Object.keys(contact).sort()).toEqual(["addedAt", "id", "isOnline", "lastSeen", "publicKey", "username"]);
    }
  });

  it("when a mutual contact has logged in, then lastSeen is their last login time", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await addContact(bob, alice.username);
    const bobLogin = await login(bob);

    const [contact] = (await listContacts(alice)).body.contacts;

    expect(contact.lastSeen).toMatch(ISO_UTC);
    expect(contact.lastSeen).toBe(bobLogin.body.user.lastLogin);
    expect(contact.isOnline).toBe(false);
  });

  it("when the contact has not added the user back, then their presence is hidden: lastSeen null, isOnline false", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await login(bob);

    const [contact] = (await listContacts(alice)).body.contacts;

    expect(contact).toMatchObject({ id: bob.id, lastSeen: null, isOnline: false });
  });

  it("when either of two mutual contacts blocks the other, then neither sees the other's lastSeen", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await addContact(bob, alice.username);
    await Promise.all([login(alice), login(bob)]);
    expect((await listContacts(alice)).body.contacts[0].lastSeen).toMatch(ISO_UTC);

    await app.request("POST", "/api/users/block", { token: bob.token, body: { userId: alice.id } });

    expect((await listContacts(alice)).body.contacts[0]).toMatchObject({ lastSeen: null, isOnline: false });
    expect((await listContacts(bob)).body.contacts[0]).toMatchObject({ lastSeen: null, isOnline: false });
  });

  it("when A adds B, then B does not see A until B adds A too (the relation is one-directional)", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);

    expect((await listContacts(bob)).body.contacts).toEqual([]);

    expect((await addContact(bob, alice.username)).status).toBe(201);
    expect((await listContacts(bob)).body.contacts.map((c: { id: string }) => c.id)).toEqual([alice.id]);
    expect((await listContacts(alice)).body.contacts.map((c: { id: string }) => c.id)).toEqual([bob.id]);
  });

  it("when contacts are listed, then they never carry the contact's email or password hash", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);

    const text = JSON.stringify((await listContacts(alice)).body);

    expect(text).not.toContain(bob.email);
    expect(text).not.toMatch(/email/i);
    expect(text).not.toMatch(/passwordHash/i);
    expect(text).not.toMatch(/\$2[aby]\$/);
  });

  it("when the user logs in, then the login response's contacts are exactly what GET /contacts returns", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await addContact(alice, carol.username);
    await login(carol);

    const loginResponse = await login(alice);
    const listed = await app.request("GET", "/api/users/contacts", { token: loginResponse.body.token });

    expect(loginResponse.body.contacts).toHaveLength(2);
    expect(loginResponse.body.contacts).toEqual(listed.body.contacts);
    expect(JSON.stringify(loginResponse.body.contacts)).not.toContain(bob.email);
  });
});

describe("GET /api/users/contacts in pages", () => {
  it("when the plain call is made, then every contact comes at once and nextCursor is null", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    for (const user of [bob, carol]) expect((await addContact(alice, user.username)).status).toBe(201);
    const response = await listContacts(alice);
    expect(response.body.contacts.map((contact: { id: string }) => contact.id)).toEqual([bob.id, carol.id]);
    expect(response.body.nextCursor).toBeNull();
  });

  it("when a limit is given, then pages follow each other through nextCursor until it is null, each contact once, in order", async () => {
    const [alice, ...others] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    for (const user of others) expect((await addContact(alice, user.username)).status).toBe(201);
    const first = await app.request("GET", "/api/users/contacts?limit=2", { token: alice.token });
    expect(first.status).toBe(200);
    expect(first.body.contacts).toHaveLength(2);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await app.request("GET", `/api/users/contacts?limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`, { token: alice.token });
    expect(second.body.contacts).toHaveLength(1);
    expect(second.body.nextCursor).toBeNull();
    expect([...first.body.contacts, ...second.body.contacts].map((contact: { id: string }) => contact.id)).toEqual(others.map((user) => user.id));
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["cursor=not-a-cursor", "cursor"],
  ])("when the query is %s, then 400 naming %s", async (query, field) => {
    const alice = await registerUser(app);
    expectError(await app.request("GET", `/api/users/contacts?${query}`, { token: alice.token }), 400, "VALIDATION_ERROR", field);
  });
});

describe("DELETE /api/users/contacts/:contactId", () => {
  it("when a user removes a contact, then 200 and the contact is gone from the list", async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await addContact(alice, carol.username);

    const response = await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token });

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true });
    expect((await listContacts(alice)).body.contacts.map((c: { id: string }) => c.id)).toEqual([carol.id]);
  });

  it("when the contact is removed twice, then the second time is 404 NOT_FOUND", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    expect((await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token })).status).toBe(200);

    expectError(await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token }), 404, "NOT_FOUND");
  });

  it("when the id is a real user who is not a contact, or a well-formed id of nobody, then 404 NOT_FOUND", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);

    expectError(await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token }), 404, "NOT_FOUND");
    const nobody = `user_${randomBytes(18).toString("base64url")}`;
    expectError(await app.request("DELETE", `/api/users/contacts/${nobody}`, { token: alice.token }), 404, "NOT_FOUND");
  });

  it("when A removes B, then B's own contact entry for A is untouched", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await addContact(bob, alice.username);

    await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token });

    expect((await listContacts(alice)).body.contacts).toEqual([]);
    expect((await listContacts(bob)).body.contacts.map((c: { id: string }) => c.id)).toEqual([alice.id]);
  });

  it("when a removed contact is added again, then 201 and it is listed again", async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addContact(alice, bob.username);
    await app.request("DELETE", `/api/users/contacts/${bob.id}`, { token: alice.token });

    expect((await addContact(alice, bob.username)).status).toBe(201);
    expect((await listContacts(alice)).body.contacts.map((c: { id: string }) => c.id)).toEqual([bob.id]);
  });

  it.each([
    ["abc", "abc"],
    ["user_x", "user_x"],
    ["a wrong prefix", `msg_${"A".repeat(24)}`],
    ["too long", `user_${"A".repeat(65)}`],
    ["..", ".."],
    ["an encoded ..", "%2e%2e"],
    ["an encoded slash", "a%2Fb"],
    ["an encoded NUL", "user_%00AAAAAAAAAAAAAAAAAAAAAAAA"],
    ["broken percent-encoding", "%ZZ"],
    ["a lone percent sign", "user_%"],
  ])("when the id is malformed (%s), then 400 VALIDATION_ERROR or 404, never 500", async (_label, contactId) => {
    const alice = await registerUser(app);
    // Sent byte for byte: fetch would normalise ".." and friends before the server saw them.
    const response = await rawRequest(app, "DELETE", `/api/users/contacts/${contactId}`, {
      headers: { Authorization: `Bearer ${alice.token}` },
    });

    expect([400, 404], response.text).toContain(response.status);
    expect(response.body).toMatchObject({
      success: false,
      error: { code: response.status === 400 ? "VALIDATION_ERROR" : "NOT_FOUND", message: expect.any(String) },
    });
  });
});

describe("GET /api/users/search", () => {
  /** Registers users whose usernames all start with `prefix` (suffixes _00, _01, ...). */
  async function registerMany(prefix: string, count: number, from = 0): Promise<RegisteredUser[]> {
    return Promise.all(
      Array.from({ length: count }, (_, i) =>
        registerUser(app, { username: `${prefix}_${String(from + i).padStart(2, "0")}` }),
      ),
    );
  }

  const names = (response: { body: any }) => response.body.users.map((user: { username: string }) => user.username);

  it("when searching a prefix, then users whose username starts with it are found, in username order, as id/username/publicKey only", async () => {
    const prefix = uniqueUsername("Pre");
    const [caller, other] = await Promise.all([registerUser(app), registerUser(app)]);
    const [first, second] = await registerMany(prefix, 2);
    await registerUser(app, { username: `x${prefix}`.slice(0, 30) }); // has the prefix in the middle only

    const response = await search(caller, `q=${prefix}`);

    expect(response.status).toBe(200);
    expect(response.body.users).toEqual([
      { id: first!.id, username: first!.username, publicKey: first!.publicKey },
      { id: second!.id, username: second!.username, publicKey: second!.publicKey },
    ]);
    const text = JSON.stringify(response.body);
    expect(text).not.toMatch(/email/i);
    expect(text).not.toMatch(/passwordHash/i);
    expect(text).not.toContain(other.username);
  });

  it("when the prefix is typed in another case, then the match is case-insensitive", async () => {
    const prefix = uniqueUsername("CaSe");
    const caller = await registerUser(app);
    const [match] = await registerMany(prefix, 1);

    for (const q of [prefix, prefix.toLowerCase(), prefix.toUpperCase()]) {
      const response = await search(caller, `q=${q}`);
      expect(response.status).toBe(200);
      expect(names(response)).toEqual([match!.username]);
    }
  });

  it("when the caller matches their own search, then they are left out and the limit is still filled by others", async () => {
    const prefix = uniqueUsername("me");
    const [caller] = await registerMany(prefix, 1, 0); // prefix_00 sorts first
    const others = await registerMany(prefix, 3, 1);

    const response = await search(caller!, `q=${prefix}&limit=2`);

    expect(response.status).toBe(200);
    expect(names(response)).toEqual([others[0]!.username, others[1]!.username]);
    const all = await search(caller!, `q=${prefix}`);
    expect(all.body.users.map((user: { id: string }) => user.id)).not.toContain(caller!.id);
    expect(all.body.users).toHaveLength(3);
  });

  it("when nobody matches, or only an email does, then the result is an empty list", async () => {
    const caller = await registerUser(app);
    const emailOnly = `mail${randomBytes(5).toString("hex")}`;
    await registerUser(app, { email: `${emailOnly}@example.com` });

    expect((await search(caller, `q=${uniqueUsername("none")}`)).body).toEqual({ success: true, users: [] });
    expect((await search(caller, `q=${emailOnly}`)).body.users).toEqual([]);
  });

  describe("when more users match than fit", () => {
    let prefix: string;
    let caller: RegisteredUser;
    beforeAll(async () => {
      prefix = uniqueUsername("lim");
      caller = await registerUser(app);
      await registerMany(prefix, 27);
    });

    it("when no limit is given, then 10 come back", async () => {
      const response = await search(caller, `q=${prefix}`);
      expect(response.status).toBe(200);
      expect(response.body.users).toHaveLength(10);
      expect(names(response)).toEqual([...names(response)].sort());
    });

    it("when limit is 25 (the maximum), then 25 come back", async () => {
      const response = await search(caller, `q=${prefix}&limit=25`);
      expect(response.status).toBe(200);
      expect(response.body.users).toHaveLength(25);
    });

    it("when limit is 1, then exactly the first match comes back", async () => {
      const response = await search(caller, `q=${prefix}&limit=1`);
      expect(response.status).toBe(200);
      expect(names(response)).toEqual([`${prefix}_00`]);
    });

    it.each([
      ["above the maximum", "26"],
      ["zero", "0"],
      ["negative", "-1"],
      ["not a number", "abc"],
      ["a fraction", "1.5"],
      ["empty", ""],
      ["repeated", "5&limit=6"],
    ])("when limit is %s, then 400 VALIDATION_ERROR naming limit", async (_label, limit) => {
      expectError(await search(caller, `q=${prefix}&limit=${limit}`), 400, "VALIDATION_ERROR", "limit");
    });
  });

  it.each([
    ["missing", "limit=5"],
    ["empty", "q="],
    ["longer than 30 characters", `q=${"a".repeat(31)}`],
    ["containing a slash", `q=${encodeURIComponent("a/b")}`],
    ["containing a NUL", "q=%00"],
    ["containing a space", "q=a%20b"],
    ["containing a percent sign", "q=%25"],
    ["broken percent-encoding", "q=%ZZ"],
    ["repeated", "q=a&q=b"],
    ["an object", "q[a]=b"],
  ])("when q is %s, then 400 VALIDATION_ERROR naming q, never 500", async (_label, query) => {
    const caller = await registerUser(app);
    expectError(await search(caller, query), 400, "VALIDATION_ERROR", "q");
  });

  it("when q is exactly 30 characters, then it is accepted", async () => {
    const caller = await registerUser(app);
    const response = await search(caller, `q=${"z".repeat(30)}`);
    expect(response.status).toBe(200);
    expect(response.body.users).toEqual([]);
  });
});

describe("authentication on every users endpoint", () => {
  const endpoints: Array<[string, string, unknown?]> = [
    ["GET", "/api/users/profile"],
    ["GET", "/api/users/contacts"],
    ["POST", "/api/users/add-contact", { username: "someone" }],
    ["DELETE", `/api/users/contacts/user_${"A".repeat(24)}`],
    ["GET", "/api/users/search?q=abc"],
  ];

  it.each(endpoints)("when %s %s is called without a token, then 401 UNAUTHORIZED", async (method, path, body) => {
    const response = await app.request(method, path, { body });
    expectError(response, 401, "UNAUTHORIZED");
  });

  it.each(endpoints)("when %s %s is called with a forged token, then 401 UNAUTHORIZED", async (method, path, body) => {
    const response = await app.request(method, path, { body, token: "not.a.jwt" });
    expectError(response, 401, "UNAUTHORIZED");
  });

  it.each(endpoints)("when %s %s is called with a non-Bearer scheme, then 401 UNAUTHORIZED", async (method, path, body) => {
    const alice = await registerUser(app);
    const response = await app.request(method, path, { body, headers: { Authorization: `Basic ${alice.token}` } });
    expectError(response, 401, "UNAUTHORIZED");
  });

  it("when the token's session has been logged out, then the users endpoints refuse it", async () => {
    const alice = await registerUser(app);
    expect((await app.request("POST", "/api/auth/logout", { token: alice.token })).status).toBe(200);
    expectError(await app.request("GET", "/api/users/profile", { token: alice.token }), 401, "UNAUTHORIZED");
  });
});
