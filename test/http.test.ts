import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { rawRequest, registerUser, startTestApp, type TestApp } from "./support/app";
import { expectError } from "./support/expect-error";

/**
 * The HTTP plumbing every route shares (shared/http.ts and app.ts): unknown routes, body parsing and its
 * limits, CORS, security headers, request ids, the error envelope without internals, and request logging.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FRONTEND = "http://localhost:5173";

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(async () => {
  await app.close();
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Anything that would tell a client about the server's insides: stack frames, file paths, error class names. */
function expectNoInternals(text: string) {
  expect(text).not.toMatch(/^\s*at\s/m);
  expect(text).not.toMatch(/\bat\s+\S+\s+\(/);
  expect(text).not.toMatch(/\bat\s+(?:file:\/\/|\/|node:)/);
  expect(text).not.toMatch(/\/(?:work|home|usr|srv|app)\//);
  expect(text).not.toMatch(/\.(?:ts|js|mjs|cjs):\d+/);
  expect(text).not.toMatch(/node_modules/);
  expect(text).not.toMatch(/\b(?:URIError|TypeError|SyntaxError|ReferenceError|FirebaseError)\b/);
  expect(text).not.toMatch(/stack/i);
}

describe("unknown routes", () => {
  it.each([
    ["GET", "/api/nope"],
    ["POST", "/api/nope"],
    ["GET", "/nope"],
    ["POST", "/nope"],
    ["GET", "/"],
    ["GET", "/api"],
    ["DELETE", "/api/auth/register"],
    ["GET", "/api/auth/login"],
  ])("when a client calls %s %s, then 404 NOT_FOUND in the envelope", async (method, path) => {
    const response = await app.request(method, path, method === "POST" ? { body: { hello: "world" } } : {});
    expectError(response, 404, "NOT_FOUND");
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("when an unknown route is called without a body, then it is still 404, not a body error", async () => {
    expectError(await app.request("POST", "/api/nope"), 404, "NOT_FOUND");
  });
});

describe("request bodies", () => {
  it.each([
    ["truncated", '{"email": "a@example.com", '],
    ["with a trailing comma", '{"email": "a@example.com",}'],
    ["with single quotes", "{'email': 'a@example.com'}"],
    ["a bare word", "hello"],
    ["a top-level string", '"just a string"'],
  ])("when the JSON is malformed (%s), then 400 VALIDATION_ERROR naming body", async (_label, rawBody) => {
    const response = await app.request("POST", "/api/auth/login", {
      rawBody,
      headers: { "Content-Type": "application/json" },
    });
    expectError(response, 400, "VALIDATION_ERROR", "body");
  });

  it("when a POST has no body at all, then 400 VALIDATION_ERROR", async () => {
    expectError(await app.request("POST", "/api/auth/login"), 400, "VALIDATION_ERROR");
  });

  it("when a POST says application/json but sends zero bytes, then 400 VALIDATION_ERROR", async () => {
    const response = await rawRequest(app, "POST", "/api/auth/login", {
      headers: { "Content-Type": "application/json", "Content-Length": "0" },
    });
    expectError(response, 400, "VALIDATION_ERROR");
  });

  it("when the body is an empty JSON object, then 400 VALIDATION_ERROR naming the first missing field", async () => {
    const response = await app.request("POST", "/api/auth/login", { body: {} });
    expectError(response, 400, "VALIDATION_ERROR", "email");
  });

  it.each([
    ["text/plain", '{"email":"a@example.com","password":"x"}'],
    ["application/x-www-form-urlencoded", "email=a%40example.com&password=x"],
    ["multipart/form-data; boundary=xyz", '--xyz\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com\r\n--xyz--\r\n'],
    ["application/xml", "<login/>"],
  ])("when a POST body is sent as %s, then 415 UNSUPPORTED_MEDIA_TYPE", async (contentType, rawBody) => {
    const response = await app.request("POST", "/api/auth/login", { rawBody, headers: { "Content-Type": contentType } });
    expectError(response, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("when a POST body has no Content-Type at all, then 415 UNSUPPORTED_MEDIA_TYPE", async () => {
    const response = await rawRequest(app, "POST", "/api/auth/login", { body: '{"email":"a@example.com"}' });
    expectError(response, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("when the JSON declares a non-UTF charset, then 415 UNSUPPORTED_MEDIA_TYPE", async () => {
    const response = await app.request("POST", "/api/auth/login", {
      rawBody: '{"email":"a@example.com","password":"x"}',
      headers: { "Content-Type": "application/json; charset=latin1" },
    });
    expectError(response, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("when the JSON says charset=utf-8, then it is accepted like plain application/json", async () => {
    const response = await app.request("POST", "/api/auth/login", {
      rawBody: JSON.stringify({ email: "nobody@example.com", password: "wrong password" }),
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });
    expectError(response, 401, "UNAUTHORIZED");
  });

  it("when a gzip-encoded JSON body is sent, then it is read; when the gzip is corrupt, then 400, never 500", async () => {
    const good = await rawRequest(app, "POST", "/api/auth/login", {
      headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
      body: gzipSync(JSON.stringify({ email: "nobody@example.com", password: "wrong password" })),
    });
    expectError(good, 401, "UNAUTHORIZED");

    const corrupt = await rawRequest(app, "POST", "/api/auth/login", {
      headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
      body: "this is not gzip",
    });
    expectError(corrupt, 400, "VALIDATION_ERROR", "body");
  });

  it("when the body uses an unknown Content-Encoding, then 415 UNSUPPORTED_MEDIA_TYPE", async () => {
    const response = await rawRequest(app, "POST", "/api/auth/login", {
      headers: { "Content-Type": "application/json", "Content-Encoding": "rot13" },
      body: "{}",
    });
    expectError(response, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  describe("when JSON_BODY_LIMIT_BYTES is 2048", () => {
    let small: TestApp;
    beforeAll(async () => {
      small = await startTestApp({ JSON_BODY_LIMIT_BYTES: "2048" });
    });
    afterAll(async () => {
      await small.close();
    });

    it("when a body is larger than the limit, then 413 PAYLOAD_TOO_LARGE", async () => {
      const response = await small.request("POST", "/api/auth/login", {
        body: { email: "a@example.com", password: "x".repeat(3000) },
      });
      expectError(response, 413, "PAYLOAD_TOO_LARGE");
    });

    it("when an oversized body is streamed without Content-Length, then 413 PAYLOAD_TOO_LARGE as well", async () => {
      const response = await rawRequest(small, "POST", "/api/auth/login", {
        headers: { "Content-Type": "application/json", "Transfer-Encoding": "chunked" },
        body: JSON.stringify({ email: "a@example.com", password: "x".repeat(3000) }),
      });
      expectError(response, 413, "PAYLOAD_TOO_LARGE");
    });

    it("when a body is just under the limit, then it reaches validation instead", async () => {
      const response = await small.request("POST", "/api/auth/login", {
        body: { email: "a@example.com", password: "x".repeat(1900) },
      });
      expectError(response, 400, "VALIDATION_ERROR", "password");
    });

    it("when the default app receives the same 3 KB body, then it is not refused as too large", async () => {
      const response = await app.request("POST", "/api/auth/login", {
        body: { email: "a@example.com", password: "x".repeat(3000) },
      });
      expectError(response, 400, "VALIDATION_ERROR", "password");
    });
  });
});

describe("CORS", () => {
  function preflight(target: Pick<TestApp, "baseUrl">, origin: string, path = "/api/auth/login") {
    return rawRequest(target, "OPTIONS", path, {
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
      },
    });
  }

  it("when the frontend (http://localhost:5173) sends a preflight, then it is allowed with credentials", async () => {
    const response = await preflight(app, FRONTEND);

    expect(response.status).toBeLessThan(300);
    expect(response.headers["access-control-allow-origin"]).toBe(FRONTEND);
    expect(response.headers["access-control-allow-credentials"]).toBe("true");
    expect(response.headers["access-control-allow-methods"]).toMatch(/POST/);
    expect(response.headers["access-control-allow-methods"]).toMatch(/DELETE/);
  });

  it("when the frontend makes a real request, then the response carries its origin, credentials and Vary: Origin", async () => {
    const response = await app.request("GET", "/api/health", { headers: { Origin: FRONTEND } });

    expect(response.headers.get("access-control-allow-origin")).toBe(FRONTEND);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("vary")).toMatch(/Origin/i);
  });

  it.each(["https://evil.example", "http://localhost:5174", "http://localhost:5173.evil.example", "null"])(
    "when another origin (%s) asks, then it gets no Access-Control-Allow-Origin",
    async (origin) => {
      const pre = await preflight(app, origin);
      expect(pre.headers["access-control-allow-origin"]).toBeUndefined();

      const actual = await app.request("GET", "/api/health", { headers: { Origin: origin } });
      expect(actual.headers.get("access-control-allow-origin")).toBeNull();
    },
  );

  describe('when CORS_ORIGINS is "https://a.example, https://b.example"', () => {
    let listed: TestApp;
    beforeAll(async () => {
      listed = await startTestApp({ CORS_ORIGINS: "https://a.example, https://b.example" });
    });
    afterAll(async () => {
      await listed.close();
    });

    it.each(["https://a.example", "https://b.example"])("when %s sends a preflight, then it is allowed", async (origin) => {
      const response = await preflight(listed, origin);
      expect(response.headers["access-control-allow-origin"]).toBe(origin);
      expect(response.headers["access-control-allow-credentials"]).toBe("true");
    });

    it.each([FRONTEND, "https://c.example", "https://a.example.evil.example", "http://a.example"])(
      "when an origin outside the list (%s) asks, then it is not allowed",
      async (origin) => {
        const response = await preflight(listed, origin);
        expect(response.headers["access-control-allow-origin"]).toBeUndefined();
      },
    );
  });
});

describe("a refused request leaves its keep-alive connection usable", () => {
  /**
   * Two requests on one TCP connection, the second sent once the first was answered: both must be
   * answered. A server that stops reading a refused body (and does not drain it) never parses the second,
   * and the client sees its connection reset seconds later.
   */
  async function twoOnOneConnection(first: Buffer): Promise<string[]> {
    const socket = connect(Number(new URL(app.baseUrl).port), "127.0.0.1");
    let received = "";
    let ended = false;
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("close", () => (ended = true));
    socket.on("error", () => undefined); // a reset shows as a missing answer
    const statusLines = () => received.match(/HTTP\/1\.1 \d{3}/g) ?? [];
    const answered = async (count: number) => {
      const deadline = Date.now() + 3000;
      while (statusLines().length < count && !ended && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    try {
      socket.write(first);
      await answered(1);
      socket.write("GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n");
      await answered(2);
      return statusLines();
    } finally {
      socket.destroy();
    }
  }

  const request = (method: string, path: string, headers: Record<string, string>, body: Buffer) =>
    Buffer.concat([
      Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`),
      body,
    ]);
  const TAIL = "A".repeat(200 * 1024);

  it("when an upload's form breaks early (a control character in a part header) and 200 KiB follow, then 400 and the next request is answered", async () => {
    const user = await registerUser(app);
    const form = Buffer.from(
      `--b\r\nContent-Disposition: form-data; name="encryptedData"; filename="a\u0006b"\r\n\r\nAAAA\r\n` +
        `--b\r\nContent-Disposition: form-data; name="iv"\r\n\r\n${TAIL}\r\n--b--\r\n`,
    );
    const lines = await twoOnOneConnection(
      request("POST", "/api/files/upload", { Authorization: `Bearer ${user.token}`, "Content-Type": "multipart/form-data; boundary=b" }, form),
    );
    expect(lines).toEqual(["HTTP/1.1 400", "HTTP/1.1 200"]);
  });

  it("when an upload of 200 KiB comes without a token, then 401 and the next request is answered", async () => {
    const lines = await twoOnOneConnection(request("POST", "/api/files/upload", { "Content-Type": "multipart/form-data; boundary=b" }, Buffer.from(TAIL)));
    expect(lines).toEqual(["HTTP/1.1 401", "HTTP/1.1 200"]);
  });

  it("when a JSON body is over the limit, then 413 and the next request is answered", async () => {
    const body = Buffer.from(JSON.stringify({ email: "a@example.com", password: TAIL.repeat(2) }));
    const lines = await twoOnOneConnection(request("POST", "/api/auth/login", { "Content-Type": "application/json" }, body));
    expect(lines).toEqual(["HTTP/1.1 413", "HTTP/1.1 200"]);
  });
});

describe("response headers", () => {
  it.each([
    ["a success", "GET", "/api/health"],
    ["a 404", "GET", "/api/nope"],
    ["a 401", "GET", "/api/users/profile"],
  ])("when a client gets %s, then helmet's security headers are there and X-Powered-By is not", async (_label, method, path) => {
    const response = await app.request(method, path);

    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(response.headers.get("strict-transport-security")).toMatch(/max-age=\d+/);
    expect(response.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("x-powered-by")).toBeNull();
  });

  it("when responses of every kind come back, then each has its own X-Request-Id", async () => {
    const user = await registerUser(app);
    const responses = [
      await app.request("GET", "/api/health"), // 200
      await app.request("POST", "/api/auth/login", { body: { email: user.email, password: user.password } }), // 200
      await app.request("POST", "/api/users/add-contact", { token: user.token, body: { username: "no_such_user_x" } }), // 404
      await app.request("GET", "/api/nope"), // 404
      await app.request("GET", "/api/users/profile"), // 401
      await app.request("POST", "/api/auth/login", { rawBody: "{", headers: { "Content-Type": "application/json" } }), // 400
      await app.request("POST", "/api/auth/login", { rawBody: "x", headers: { "Content-Type": "text/plain" } }), // 415
      await app.request("POST", "/api/auth/register", {
        body: { email: `reg${Date.now()}@example.com`, username: `reg${Date.now()}`, password: "a long password", publicKey: user.publicKey },
      }), // 201
    ];
    expect(responses.map((response) => response.status)).toEqual([200, 200, 404, 404, 401, 400, 415, 201]);

    const ids = responses.map((response) => response.headers.get("x-request-id"));
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("error responses never expose internals", () => {
  it("when many kinds of errors are provoked, then none of their bodies contains a stack trace or a file path", async () => {
    const user = await registerUser(app);
    const auth = { Authorization: `Bearer ${user.token}` };
    const responses = [
      await rawRequest(app, "GET", "/api/nope"),
      await rawRequest(app, "POST", "/api/auth/login", { headers: { "Content-Type": "application/json" }, body: "{oops" }),
      await rawRequest(app, "POST", "/api/auth/login", { headers: { "Content-Type": "text/plain" }, body: "x" }),
      await rawRequest(app, "POST", "/api/auth/login", {
        headers: { "Content-Type": "application/json", "Content-Encoding": "gzip" },
        body: "not gzip",
      }),
      await rawRequest(app, "GET", "/api/users/profile", { headers: { Authorization: "Bearer not.a.jwt" } }),
      await rawRequest(app, "DELETE", "/api/users/contacts/%ZZ", { headers: auth }),
      await rawRequest(app, "DELETE", "/api/users/contacts/..", { headers: auth }),
      await rawRequest(app, "GET", "/api/users/search?q=a&q=b", { headers: auth }),
      await rawRequest(app, "POST", "/api/users/add-contact", {
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ username: { toString: null } }),
      }),
    ];

    for (const response of responses) {
      expect(response.status, response.text).toBeGreaterThanOrEqual(400);
      expect(response.status, response.text).toBeLessThan(500);
      expect(response.body, response.text).toMatchObject({ success: false, error: { code: expect.any(String) } });
      expectNoInternals(response.text);
    }
  });

  it("when a route fails unexpectedly, then 500 INTERNAL_ERROR with a generic message, and the details go only to the log", async () => {
    const secretFailure = new Error("connection to /work/main/functions/src/secret.ts:42 refused at 10.0.0.7");
    vi.spyOn(app.services.userService, "profile").mockRejectedValueOnce(secretFailure);
    const user = await registerUser(app);

    const response = await rawRequest(app, "GET", "/api/users/profile", { headers: { Authorization: `Bearer ${user.token}` } });

    expect(response.status).toBe(500);
    expect(response.body).toEqual({ success: false, error: { code: "INTERNAL_ERROR", message: "Internal server error" } });
    expectNoInternals(response.text);
    expect(response.text).not.toContain("10.0.0.7");

    const requestId = response.headers["x-request-id"];
    await vi.waitFor(() => {
      const entries = app.logs.map((line) => JSON.parse(line)).filter((entry) => entry.requestId === requestId);
      expect(entries.map((entry) => entry.message).sort()).toEqual(["request failed", "unhandled error"]);
      expect(entries.find((entry) => entry.message === "request failed")).toMatchObject({ severity: "ERROR", status: 500 });
    });
  });
});

describe("a busy database", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.close();
  });

  it("when Firestore gives up on a contended transaction (ABORTED), then 503 SERVICE_UNAVAILABLE with Retry-After, not 500", async () => {
    const aborted = Object.assign(new Error("10 ABORTED: Transaction lock timeout."), { code: 10 });
    vi.spyOn(app.services.userService, "profile").mockRejectedValueOnce(aborted);
    const user = await registerUser(app);
    const response = await app.request("GET", "/api/users/profile", { token: user.token });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    expect(response.body).toMatchObject({ success: false, error: { code: "SERVICE_UNAVAILABLE" } });
  });
});

describe("request logging", () => {
  it("when a user registers, logs in, fails a login and reads the profile, then one request line each and no secret in any line", async () => {
    const logged = await startTestApp();
    try {
      const user = await registerUser(logged, { email: `Logged.User.${Date.now()}@Example.com` });
      const goodLogin = await logged.request("POST", "/api/auth/login", { body: { email: user.email, password: user.password } });
      expect(goodLogin.status).toBe(200);
      const badPassword = "not the right password at all";
      const badLogin = await logged.request("POST", "/api/auth/login", { body: { email: user.email, password: badPassword } });
      expect(badLogin.status).toBe(401);
      const profile = await logged.request("GET", "/api/users/profile", { token: goodLogin.body.token });
      expect(profile.status).toBe(200);

      let requests: any[] = [];
      await vi.waitFor(() => {
        requests = logged.logs.map((line) => JSON.parse(line)).filter((entry) => entry.message === "request");
        expect(requests).toHaveLength(4);
      });

      expect(requests.map(({ method, route, status }) => ({ method, route, status }))).toEqual([
        { method: "POST", route: "/api/auth/register", status: 201 },
        { method: "POST", route: "/api/auth/login", status: 200 },
        { method: "POST", route: "/api/auth/login", status: 401 },
        { method: "GET", route: "/api/users/profile", status: 200 },
      ]);
      expect(requests.slice(1).map((entry) => entry.requestId)).toEqual(
        [goodLogin, badLogin, profile].map((response) => response.headers.get("x-request-id")),
      );
      expect(requests[3]).toMatchObject({ userId: user.id, durationMs: expect.any(Number) });

      const everything = logged.logs.join("\n");
      const pemBody = user.publicKey
        .split("\n")
        .filter((line) => line.length > 0 && !line.startsWith("-----"));
      const secrets = [
        user.password,
        badPassword,
        user.token,
        user.refreshToken,
        goodLogin.body.token,
        goodLogin.body.refreshToken,
        user.email,
        user.email.toLowerCase(),
        ...pemBody,
      ];
      for (const secret of secrets) {
        expect(secret.length).toBeGreaterThan(8);
        expect(everything).not.toContain(secret);
      }
      // A JWT's signature alone would be enough to recognise the token.
      expect(everything).not.toContain(goodLogin.body.token.split(".")[2]);
    } finally {
      await logged.close();
    }
  });

  it("when a request fails inside a sub-router, then its line names the full route pattern, never the ids in the path", async () => {
    const user = await registerUser(app);
    const contactId = `user_${"Q".repeat(24)}`;
    const response = await app.request("DELETE", `/api/users/contacts/${contactId}`, { token: user.token });
    expect(response.status).toBe(404);

    const requestId = response.headers.get("x-request-id");
    await vi.waitFor(() => {
      const entry = app.logs.map((line) => JSON.parse(line)).find((e) => e.requestId === requestId);
      expect(entry).toMatchObject({ message: "request", method: "DELETE", route: "/api/users/contacts/:contactId", status: 404 });
    });
    expect(app.logs.join("\n")).not.toContain(contactId);
  });
});
