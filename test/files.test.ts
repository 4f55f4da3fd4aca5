import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import { deleteApp, initializeApp } from "firebase-admin/app";
import { getStorage } from "firebase-admin/storage";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../functions/src/app";
import type { BlobStore } from "../functions/src/files/blob-store";
import { GcsBlobStore } from "../functions/src/files/gcs-blob-store";
import { defaultStorageBucket, loadFirebaseToolsStorage, TESTED_FIREBASE_TOOLS_VERSION } from "../functions/src/local/storage-emulator";
import { ORPHAN_GRACE_MS } from "../functions/src/files/cleanup";
import { newId } from "../functions/src/shared/ids";
import { registerUser, startTestApp, type RegisteredUser, type TestApp } from "./support/app";
import { expectError } from "./support/expect-error";
import { multipart, type Part } from "./support/multipart";
import { send } from "./security/support";

const KIB = 1024;
const MIB = 1024 * KIB;
const DAY_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------------
// Helpers: multipart bodies built byte by byte (so every malformed shape can be sent), and the calls.

const FIELD_ORDER = ["receiverId", "filename", "encryptedData", "iv", "authTag", "signature"] as const;
type UploadOverrides = Partial<Record<(typeof FIELD_ORDER)[number] | string, string | Buffer | undefined>>;

/** The guide's form: text parts and the file part in the guide's order. undefined omits a part; a Buffer makes it a file. */
function uploadParts(receiverId: string, data: Buffer, overrides: UploadOverrides = {}): Part[] {
  const values: UploadOverrides = {
    receiverId,
    filename: "document.pdf",
    encryptedData: data,
    iv: randomBytes(12).toString("base64"),
    authTag: randomBytes(16).toString("base64"),
    signature: randomBytes(64).toString("base64"),
    ...overrides,
  };
  const names = [...FIELD_ORDER, ...Object.keys(overrides).filter((name) => !(FIELD_ORDER as readonly string[]).includes(name))];
  return names.flatMap((name): Part[] => {
    const value = values[name];
    if (value === undefined) return [];
    return Buffer.isBuffer(value) ? [{ name, data: value }] : [{ name, value }];
  });
}

async function postForm(app: Pick<TestApp, "baseUrl">, token: string | undefined, parts: Part[]) {
  const { body, contentType } = multipart(parts);
  return sendUpload(app, token, body, { "Content-Type": contentType });
}

async function sendUpload(app: Pick<TestApp, "baseUrl">, token: string | undefined, body: RequestInit["body"], headers: Record<string, string> = {}) {
  // The big uploads here (20-25 MiB) get the test's own 30 s, not send's default 10 s.
  return send(app, "POST", "/api/files/upload", { authorization: token ? `Bearer ${token}` : undefined, body, headers, timeoutMs: 30_000 });
}

async function upload(app: TestApp, from: RegisteredUser, to: RegisteredUser, data: Buffer, overrides: UploadOverrides = {}) {
  return postForm(app, from.token, uploadParts(to.id, data, overrides));
}

async function download(app: Pick<TestApp, "baseUrl">, user: RegisteredUser | undefined, fileId: string) {
  const response = await fetch(`${app.baseUrl}/api/files/${fileId}`, {
    headers: user ? { Authorization: `Bearer ${user.token}` } : {},
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const isJson = response.headers.get("content-type")?.startsWith("application/json");
  return { status: response.status, headers: response.headers, bytes, body: isJson ? JSON.parse(bytes.toString("utf8")) : undefined };
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** Every key in the app's blob store (its bucket on the Storage emulator). */
async function blobKeys(app: TestApp): Promise<string[]> {
  const keys: string[] = [];
  for await (const blob of app.blobs.list("")) keys.push(blob.key);
  return keys.sort();
}

/** The size of the blob at `key` in the app's store, or undefined when there is none. */
async function blobSize(app: TestApp, key: string): Promise<number | undefined> {
  for await (const blob of app.blobs.list(key)) if (blob.key === key) return blob.size;
  return undefined;
}

async function filesOf(app: TestApp, user: RegisteredUser): Promise<number> {
  return (await app.db.collection("files").where("uploaderId", "==", user.id).count().get()).data().count;
}

async function usedBytes(app: TestApp, user: RegisteredUser): Promise<number> {
  return ((await app.db.collection("fileUsage").doc(user.id).get()).data()?.bytes as number | undefined) ?? 0;
}

// ---------------------------------------------------------------------------------------------------

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.close();
});

async function pair(on: TestApp = app): Promise<[RegisteredUser, RegisteredUser]> {
  return Promise.all([registerUser(on), registerUser(on)]);
}

/** After the app's clock has moved by days, tokens have expired: log in again, as the client would. */
async function logIn(on: TestApp, user: RegisteredUser): Promise<RegisteredUser> {
  const response = await on.request("POST", "/api/auth/login", { body: { email: user.email, password: user.password } });
  expect(response.status).toBe(200);
  return { ...user, token: response.body.token, refreshToken: response.body.refreshToken };
}

describe("POST /api/files/upload, then GET /api/files/:fileId", () => {
  it("when a 1 MiB file is uploaded as a browser FormData, then 201 with the guide's fields and both parties download the exact bytes", async () => {
    const [alice, bob] = await pair();
    const data = randomBytes(MIB);
    const iv = randomBytes(12).toString("base64");
    const authTag = randomBytes(16).toString("base64");
    const signature = randomBytes(64).toString("base64");
    // What the frontend does: FormData with the ciphertext as a Blob.
    const form = new FormData();
    form.append("receiverId", bob.id);
    form.append("filename", "document.pdf");
    form.append("encryptedData", new Blob([data]));
    form.append("iv", iv);
    form.append("authTag", authTag);
    form.append("signature", signature);
    const response = await sendUpload(app, alice.token, form);

    expect(response.status, JSON.stringify(response.body)).toBe(201);
    const { fileId } = response.body;
    expect(fileId).toMatch(/^file_[A-Za-z0-9_-]{20,}$/);
    expect(response.body).toEqual({
      success: true,
      fileId,
      downloadUrl: `/api/files/${fileId}`,
      uploadedAt: expect.any(String),
      file: {
        id: fileId,
        fileId,
        filename: "document.pdf",
        size: MIB,
        iv,
        authTag,
        signature,
        uploaderId: alice.id,
        receiverId: bob.id,
        uploadedAt: response.body.uploadedAt,
        expiresAt: expect.any(String),
        deleteAfterDownload: false,
        downloadUrl: `/api/files/${fileId}`,
      },
    });
    expect(new Date(response.body.uploadedAt).toISOString()).toBe(response.body.uploadedAt);
    expect(Date.parse(response.body.file.expiresAt) - Date.parse(response.body.uploadedAt)).toBe(30 * DAY_MS);
    expect(response.headers.get("ratelimit-limit")).toBe("30");

    for (const user of [alice, bob]) {
      const got = await download(app, user, fileId);
      expect(got.status).toBe(200);
      expect(got.headers.get("content-type")).toBe("application/octet-stream");
      expect(got.headers.get("content-disposition")).toBe('attachment; filename="encrypted_file"');
      expect(got.headers.get("x-content-type-options")).toBe("nosniff");
      expect(got.headers.get("content-length")).toBe(String(MIB));
      expect(got.bytes.equals(data)).toBe(true);

      const meta = await app.request("GET", `/api/files/${fileId}/meta`, { token: user.token });
      expect(meta.status).toBe(200);
      expect(meta.body).toEqual({ success: true, file: response.body.file });
    }
  });

  it("when a 20 MiB file is uploaded with its fields after the file part, then both parties download it byte for byte", async () => {
    const [alice, bob] = await pair();
    const data = randomBytes(20 * MIB);
    const parts = uploadParts(bob.id, data);
    const fileFirst = [...parts.filter((part) => part.name === "encryptedData"), ...parts.filter((part) => part.name !== "encryptedData")];
    const response = await postForm(app, alice.token, fileFirst);
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    expect(response.body.file.size).toBe(20 * MIB);
    for (const user of [alice, bob]) {
      const got = await download(app, user, response.body.fileId);
      expect(got.status).toBe(200);
      expect(got.bytes.length).toBe(20 * MIB);
      expect(sha256(got.bytes)).toBe(sha256(data));
    }
    expect(await usedBytes(app, alice)).toBe(20 * MIB);
    expect(await usedBytes(app, bob)).toBe(0);
  });

  it("when the body arrives pre-read as req.rawBody (as in Cloud Functions), then the upload is parsed from it", async () => {
    // The Functions framework reads the whole body before the app runs: the request stream is spent.
    const handler = createApp({ db: app.db, config: app.config }, app.services);
    const server: Server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      Object.assign(req, { rawBody: Buffer.concat(chunks) });
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const functionsLike = { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    try {
      const [alice, bob] = await pair();
      const data = randomBytes(MIB + 123);
      const response = await postForm(functionsLike, alice.token, uploadParts(bob.id, data));
      expect(response.status, JSON.stringify(response.body)).toBe(201);
      const got = await download(functionsLike, bob, response.body.fileId);
      expect(got.bytes.equals(data)).toBe(true);

      const missingIv = await postForm(functionsLike, alice.token, uploadParts(bob.id, data, { iv: undefined }));
      expectError(missingIv, 400, "VALIDATION_ERROR", "iv");
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe("who may see a file", () => {
  it("when a stranger asks for a file, then 404 for download, meta and delete, as for a file that does not exist", async () => {
    const [alice, bob] = await pair();
    const mallory = await registerUser(app);
    const { body } = await upload(app, alice, bob, randomBytes(1000));
    for (const fileId of [body.fileId, newId("file")]) {
      expectError(await download(app, mallory, fileId), 404, "NOT_FOUND");
      expectError(await app.request("GET", `/api/files/${fileId}/meta`, { token: mallory.token }), 404, "NOT_FOUND");
      expectError(await app.request("DELETE", `/api/files/${fileId}`, { token: mallory.token }), 404, "NOT_FOUND");
    }
    // Same answer, word for word: nothing tells an existing file from a missing one.
    const existing = await download(app, mallory, body.fileId);
    const missing = await download(app, mallory, newId("file"));
    expect(existing.body).toEqual(missing.body);
    expect((await download(app, bob, body.fileId)).status).toBe(200);
  });

  it("when nobody is logged in, then 401 for upload, download and meta", async () => {
    const [alice, bob] = await pair();
    const { body } = await upload(app, alice, bob, randomBytes(1000));
    expectError(await postForm(app, undefined, uploadParts(bob.id, randomBytes(1000))), 401, "UNAUTHORIZED");
    expectError(await download(app, undefined, body.fileId), 401, "UNAUTHORIZED");
    expectError(await app.request("GET", `/api/files/${body.fileId}/meta`), 401, "UNAUTHORIZED");
    expect(await filesOf(app, alice)).toBe(1);
  });

  it("when the file id is not a file id, then 400 naming it", async () => {
    const [alice] = await pair();
    for (const fileId of ["file_789", "user_aaaaaaaaaaaaaaaaaaaaaaaa", "..%2F..%2Fetc"]) {
      expectError(await download(app, alice, fileId), 400, "VALIDATION_ERROR", "fileId");
    }
  });
});

describe("refused uploads store nothing", () => {
  const oneKib = () => randomBytes(KIB);

  it.each<[string, string, UploadOverrides]>([
    ["receiverId is missing", "receiverId", { receiverId: undefined }],
    ["filename is missing", "filename", { filename: undefined }],
    ["encryptedData is missing", "encryptedData", { encryptedData: undefined }],
    ["iv is missing", "iv", { iv: undefined }],
    ["authTag is missing", "authTag", { authTag: undefined }],
    ["signature is missing", "signature", { signature: undefined }],
    ["encryptedData is a text field", "encryptedData", { encryptedData: "AAAA" }],
    ["receiverId is a file", "receiverId", { receiverId: Buffer.from("user_x") }],
    ["iv is a file", "iv", { iv: randomBytes(12) }],
    ["iv is not base64", "iv", { iv: "not base64!" }],
    ["authTag is too long", "authTag", { authTag: "A".repeat(65) }],
    ["signature is too long", "signature", { signature: "A".repeat(1025) }],
    ["receiverId is not a user id", "receiverId", { receiverId: "user_456" }],
    ["receiverId is a path", "receiverId", { receiverId: "../users/x" }],
    ["the file is empty", "encryptedData", { encryptedData: Buffer.alloc(0) }],
    ["the filename is only dots", "filename", { filename: ".." }],
    ["the filename is only control characters", "filename", { filename: "\u0000\u0007\r\n" }],
    ["the filename is too long", "filename", { filename: "a".repeat(300) }],
    ["a second file part comes along", "extraFile", { extraFile: randomBytes(10) }],
  ])("when %s, then 400 VALIDATION_ERROR naming %s", async (_case, field, overrides) => {
    const [alice, bob] = await pair();
    const before = await blobKeys(app);
    const response = await upload(app, alice, bob, oneKib(), overrides);
    expectError(response, 400, "VALIDATION_ERROR", field);
    expect(await blobKeys(app)).toEqual(before);
    expect(await filesOf(app, alice)).toBe(0);
    expect(await usedBytes(app, alice)).toBe(0);
  });

  it("when a field appears twice, then 400 naming it", async () => {
    const [alice, bob] = await pair();
    const parts = [...uploadParts(bob.id, oneKib()), { name: "iv", value: "AAAA" }];
    expectError(await postForm(app, alice.token, parts), 400, "VALIDATION_ERROR", "iv");
  });

  it("when the form has more than 16 parts, then 400 naming the body and nothing is kept", async () => {
    const [alice, bob] = await pair();
    const before = await blobKeys(app);
    const padding = Array.from({ length: 20 }, (_, i) => ({ name: `extra${i}`, value: "x" }));
    const response = await postForm(app, alice.token, [...uploadParts(bob.id, oneKib()), ...padding]);
    expectError(response, 400, "VALIDATION_ERROR", "body");
    expect(await blobKeys(app)).toEqual(before);
  });

  it("when the form has unknown text fields, then they are ignored", async () => {
    const [alice, bob] = await pair();
    const response = await upload(app, alice, bob, oneKib(), { mimeType: "application/pdf" });
    expect(response.status).toBe(201);
    expect(response.body.file).not.toHaveProperty("mimeType");
  });

  it("when the receiver does not exist, then 404 naming receiverId; when it is yourself, then 400", async () => {
    const [alice] = await pair();
    const before = await blobKeys(app);
    const unknown = await postForm(app, alice.token, uploadParts(newId("user"), oneKib()));
    expectError(unknown, 404, "NOT_FOUND", "receiverId");
    expectError(await postForm(app, alice.token, uploadParts(alice.id, oneKib())), 400, "VALIDATION_ERROR", "receiverId");
    expect(await blobKeys(app)).toEqual(before);
    expect(await filesOf(app, alice)).toBe(0);
  });

  it.each([
    ["application/json", JSON.stringify({ receiverId: "x" })],
    ["text/plain", "hello"],
    ["application/x-www-form-urlencoded", "receiverId=x&filename=y"],
  ])("when the body is %s, then 415 UNSUPPORTED_MEDIA_TYPE", async (contentType, body) => {
    const [alice] = await pair();
    expectError(await sendUpload(app, alice.token, body, { "Content-Type": contentType }), 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("when there is no Content-Type at all, then 415", async () => {
    const [alice] = await pair();
    expectError(await sendUpload(app, alice.token, undefined), 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("when the multipart body is malformed (no boundary, cut short), then 400 naming the body and nothing is kept", async () => {
    const [alice, bob] = await pair();
    const before = await blobKeys(app);
    const noBoundary = await sendUpload(app, alice.token, "x", { "Content-Type": "multipart/form-data" });
    expectError(noBoundary, 400, "VALIDATION_ERROR", "body");
    const { body, contentType } = multipart(uploadParts(bob.id, randomBytes(100 * KIB)));
    const cutShort = await sendUpload(app, alice.token, body.subarray(0, 50 * KIB), { "Content-Type": contentType });
    expectError(cutShort, 400, "VALIDATION_ERROR", "body");
    expect(await blobKeys(app)).toEqual(before);
    expect(await filesOf(app, alice)).toBe(0);
  });

  it.each([
    ["before its body is read", 0, 0],
    ["midway through the file", MIB, 300],
  ])("when the client disconnects %s, then the upload settles, nothing is kept and the server carries on", async (_when, sentBytes, waitMs) => {
    const [alice, bob] = await pair();
    const before = await blobKeys(app);
    const { body, contentType } = multipart(uploadParts(bob.id, randomBytes(4 * MIB)));
    const uploadCall = vi.spyOn(app.services.files, "upload");
    try {
      const req = httpRequest(`${app.baseUrl}/api/files/upload`, {
        method: "POST",
        headers: { "Content-Type": contentType, "Content-Length": String(body.length), Authorization: `Bearer ${alice.token}` },
      });
      req.on("error", () => undefined); // we hang up on purpose
      req.flushHeaders();
      await new Promise((resolve) => req.write(body.subarray(0, sentBytes), resolve));
      await expect.poll(() => uploadCall.mock.calls.length).toBe(1); // past auth, in the upload flow
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      req.destroy();
      // The handler does not hang on a body that will never end: it fails, and cleans up behind it.
      await expect(uploadCall.mock.results[0]!.value).rejects.toMatchObject({ code: "VALIDATION_ERROR", details: { field: "body" } });
    } finally {
      uploadCall.mockRestore();
    }
    expect(await blobKeys(app)).toEqual(before);
    expect(await filesOf(app, alice)).toBe(0);
    expect((await upload(app, alice, bob, randomBytes(KIB))).status).toBe(201);
  });

  it("when the file is one byte over the default 25 MiB, then 413 PAYLOAD_TOO_LARGE and nothing is kept", async () => {
    const [alice, bob] = await pair();
    expect(app.config.files.maxBytes).toBe(25 * MIB);
    const before = await blobKeys(app);
    const response = await upload(app, alice, bob, randomBytes(25 * MIB + 1));
    expectError(response, 413, "PAYLOAD_TOO_LARGE", "encryptedData");
    expect(response.body.error.details.maxBytes).toBe(25 * MIB);
    expect(await blobKeys(app)).toEqual(before);
    expect(await filesOf(app, alice)).toBe(0);
  });
});

describe("filenames are metadata, never paths", () => {
  it("when the filename has ../, NUL, control and direction characters, then it is stored sanitized and the blob path is the file id", async () => {
    const [alice, bob] = await pair();
    const cases: Array<[string, string]> = [
      ["../../etc/passwd\u0000\u0007x\r\n.txt", "passwdx.txt"],
      ["C:\\Users\\me\\report.pdf", "report.pdf"],
      ["invoice\u202Efdp.exe", "invoicefdp.exe"],
      ["  ..\\..\\.bashrc ", ".bashrc"],
      ["résumé 2025 (final).pdf", "résumé 2025 (final).pdf"],
    ];
    for (const [raw, stored] of cases) {
      const response = await upload(app, alice, bob, randomBytes(100), { filename: raw });
      expect(response.status, raw).toBe(201);
      expect(response.body.file.filename).toBe(stored);
      const meta = await app.request("GET", `/api/files/${response.body.fileId}/meta`, { token: bob.token });
      expect(meta.body.file.filename).toBe(stored);
      // The body is at files/<fileId>, whatever the name said.
      expect(await blobSize(app, `files/${response.body.fileId}`)).toBe(100);
    }
    // Nothing landed anywhere the name pointed (etc/passwd, Users/me, ...): every key is a file id's.
    for (const key of await blobKeys(app)) expect(key).toMatch(/^files\/file_[A-Za-z0-9_-]{20,}$/);
  });
});

describe("limits: size, upload rate and storage quota", () => {
  let small: TestApp;
  beforeAll(async () => {
    small = await startTestApp({ FILE_MAX_BYTES: String(64 * KIB), FILE_QUOTA_BYTES: String(100 * KIB), FILE_UPLOAD_LIMIT: "3" });
  });
  afterAll(async () => {
    await small.close();
  });

  it("when the file is exactly FILE_MAX_BYTES, then 201; one byte more is 413 and nothing is kept", async () => {
    const [alice, bob] = await pair(small);
    expect((await upload(small, alice, bob, randomBytes(64 * KIB))).status).toBe(201);
    const before = await blobKeys(small);
    expectError(await upload(small, alice, bob, randomBytes(64 * KIB + 1)), 413, "PAYLOAD_TOO_LARGE", "encryptedData");
    expect(await blobKeys(small)).toEqual(before);
    expect(await filesOf(small, alice)).toBe(1);
  });

  it("when the declared body is far larger than any valid upload, then 413 before it is read", async () => {
    const [alice, bob] = await pair(small);
    const response = await upload(small, alice, bob, randomBytes(2 * MIB));
    expectError(response, 413, "PAYLOAD_TOO_LARGE", "encryptedData");
    expect(await filesOf(small, alice)).toBe(0);
    // The limiter was not even asked: the refusal came first.
    expect((await upload(small, alice, bob, randomBytes(KIB))).headers.get("ratelimit-remaining")).toBe("2");
  });

  it("when a chunked body (no Content-Length) passes FILE_MAX_BYTES, then 413 with Connection: close arrives before the body is finished, and nothing is kept", async () => {
    const [alice, bob] = await pair(small);
    const before = await blobKeys(small);
    const { body, contentType } = multipart(uploadParts(bob.id, randomBytes(4 * MIB)));
    const req = httpRequest(`${small.baseUrl}/api/files/upload`, {
      method: "POST",
      headers: { "Content-Type": contentType, "Transfer-Encoding": "chunked", Authorization: `Bearer ${alice.token}` },
    });
    req.on("error", () => undefined); // the server closes the connection on us: that is the point
    let sentBytes = 0;
    const answered = new Promise<{ status: number; connection?: string; body: any }>((resolve) => {
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        const finish = () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text ? JSON.parse(text) : text });
        };
        res.on("end", finish);
        res.on("error", finish);
      });
    });
    let done = false;
    void answered.then(() => (done = true));
    // 16 KiB every 10 ms: the whole 4 MiB would take over 2.5 s; the limit (64 KiB) is passed in a few chunks.
    for (let offset = 0; offset < body.length && !done && !req.destroyed; offset += 16 * KIB) {
      req.write(body.subarray(offset, offset + 16 * KIB));
      sentBytes = Math.min(body.length, offset + 16 * KIB);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const response = await answered;
    expect(sentBytes).toBeLessThan(body.length);
    expect(response.status).toBe(413);
    expect(response.connection).toBe("close");
    expect(response.body.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", details: { field: "encryptedData", maxBytes: 64 * KIB } });
    req.destroy();
    expect(await blobKeys(small)).toEqual(before);
    expect(await filesOf(small, alice)).toBe(0);
    // The server carries on: the next upload is stored.
    expect((await upload(small, alice, bob, randomBytes(KIB))).status).toBe(201);
  });

  it("when a user uploads more than FILE_UPLOAD_LIMIT files in the window, then 429 RATE_LIMITED with Retry-After", async () => {
    const [alice, bob] = await pair(small);
    for (let i = 0; i < 3; i += 1) expect((await upload(small, alice, bob, randomBytes(KIB))).status).toBe(201);
    const refused = await upload(small, alice, bob, randomBytes(KIB));
    expectError(refused, 429, "RATE_LIMITED");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await filesOf(small, alice)).toBe(3);
    // Another user has a bucket of their own.
    expect((await upload(small, bob, alice, randomBytes(KIB))).status).toBe(201);
  });

  it("when a file does not fit in the uploader's quota, then 413 QUOTA_EXCEEDED; deleting a file makes room", async () => {
    const [alice, bob] = await pair(small);
    const first = await upload(small, alice, bob, randomBytes(60 * KIB));
    expect(first.status).toBe(201);
    const before = await blobKeys(small);
    const refused = await upload(small, alice, bob, randomBytes(60 * KIB));
    expectError(refused, 413, "QUOTA_EXCEEDED");
    expect(refused.body.error.details).toMatchObject({ quotaBytes: 100 * KIB, usedBytes: 60 * KIB });
    expect(await blobKeys(small)).toEqual(before);
    expect(await usedBytes(small, alice)).toBe(60 * KIB);

    // The quota is the uploader's: receiving files costs nothing.
    expect(await usedBytes(small, bob)).toBe(0);

    expect((await small.request("DELETE", `/api/files/${first.body.fileId}`, { token: alice.token })).status).toBe(200);
    expect(await usedBytes(small, alice)).toBe(0);
    expect((await upload(small, alice, bob, randomBytes(60 * KIB))).status).toBe(201);
  });

  it("when concurrent uploads together exceed the quota, then only those that fit are stored", async () => {
    const [alice, bob] = await pair(small);
    const responses = await Promise.all([1, 2, 3].map(() => upload(small, alice, bob, randomBytes(40 * KIB))));
    expect(responses.map((response) => response.status).sort()).toEqual([201, 201, 413]);
    expect(await usedBytes(small, alice)).toBe(80 * KIB);
    expect(await filesOf(small, alice)).toBe(2);
  });

  it("when the quota is already full, then 413 QUOTA_EXCEEDED before the body is stored", async () => {
    const [alice, bob] = await pair(small);
    expect((await upload(small, alice, bob, randomBytes(64 * KIB))).status).toBe(201);
    expect((await upload(small, alice, bob, randomBytes(36 * KIB))).status).toBe(201);
    expect(await usedBytes(small, alice)).toBe(100 * KIB);
    const before = await blobKeys(small);
    expectError(await upload(small, alice, bob, randomBytes(KIB)), 413, "QUOTA_EXCEEDED");
    expect(await blobKeys(small)).toEqual(before);
  });
});

describe("DELETE /api/files/:fileId", () => {
  it("when the uploader deletes a file, then it is gone for both parties; the receiver may not delete it", async () => {
    const [alice, bob] = await pair();
    const { body } = await upload(app, alice, bob, randomBytes(KIB));
    expectError(await app.request("DELETE", `/api/files/${body.fileId}`, { token: bob.token }), 403, "FORBIDDEN");
    const deleted = await app.request("DELETE", `/api/files/${body.fileId}`, { token: alice.token });
    expect(deleted.status).toBe(200);
    expect(deleted.body.success).toBe(true);
    for (const user of [alice, bob]) expectError(await download(app, user, body.fileId), 404, "NOT_FOUND");
    expect(await blobKeys(app)).not.toContain(`files/${body.fileId}`);
    expect(await usedBytes(app, alice)).toBe(0);
  });
});

describe("two instances on one project", () => {
  it("when a file is uploaded through one instance, then the other serves it (one bucket, as in production); closing one deletes the bucket's objects", async () => {
    const first = await startTestApp();
    const second = await startTestApp({}, { projectId: first.projectId });
    try {
      const [alice, bob] = await pair(first);
      const data = randomBytes(10 * KIB);
      const { body } = await upload(first, alice, bob, data);
      const got = await download(second, bob, body.fileId);
      expect(got.status).toBe(200);
      expect(got.bytes.equals(data)).toBe(true);
      expect(await blobKeys(second)).toEqual([`files/${body.fileId}`]);
      // A project of its own: the other apps of this file see none of it.
      expect(await blobKeys(app)).not.toContain(`files/${body.fileId}`);
    } finally {
      await second.close();
    }
    expect(await blobKeys(first)).toEqual([]);
    await first.close();
  });
});

describe("cleanup: expiry and orphans", () => {
  let clean: TestApp;
  beforeAll(async () => {
    clean = await startTestApp({ FILE_TTL_DAYS: "30" });
  });
  afterAll(async () => {
    await clean.close();
  });

  const fileDoc = (fileId: string) => clean.db.collection("files").doc(fileId).get();
  // Blob ages come from the store (real time), record ages from the app's clock: the orphan-blob test
  // runs first, while the two still agree.

  it("when a blob has no record, then it is kept for an hour (an upload may be in flight) and removed after", async () => {
    const store = clean.blobs;
    const orphan = `files/${newId("file")}`;
    const foreign = "other/notes";
    await store.write(orphan, Readable.from([randomBytes(100)]));
    await store.write(foreign, Readable.from([randomBytes(10)]));

    await clean.services.fileCleanup.run();
    expect(await blobKeys(clean)).toContain(orphan);

    clean.clock.advance(ORPHAN_GRACE_MS + 60_000);
    const report = await clean.services.fileCleanup.run();
    expect(report.orphanBlobs).toBeGreaterThanOrEqual(1);
    const keys = await blobKeys(clean);
    expect(keys).not.toContain(orphan);
    expect(keys).toContain(foreign); // not a file body of ours: not ours to delete
  });

  it("when a file is past FILE_TTL_DAYS, then it is gone (410) at once, and the cleanup removes blob, record and usage; a younger file stays", async () => {
    let [alice, bob] = await pair(clean);
    const old = await upload(clean, alice, bob, randomBytes(10 * KIB));
    clean.clock.advance(29 * DAY_MS);
    alice = await logIn(clean, alice); // one at a time: both would contend for the per-address login bucket
    bob = await logIn(clean, bob);
    const young = await upload(clean, alice, bob, randomBytes(5 * KIB));
    clean.clock.advance(DAY_MS + 1000);
    alice = await logIn(clean, alice);
    bob = await logIn(clean, bob);

    // Past its time the file is gone for the parties (410, they may know why), before any cleanup ran.
    expectError(await download(clean, bob, old.body.fileId), 410, "FILE_GONE");
    expectError(await clean.request("GET", `/api/files/${old.body.fileId}/meta`, { token: alice.token }), 410, "FILE_GONE");

    const report = await clean.services.fileCleanup.run();
    expect(report.expiredFiles).toBeGreaterThanOrEqual(1);
    expect((await fileDoc(old.body.fileId)).exists).toBe(false);
    expect(await blobKeys(clean)).not.toContain(`files/${old.body.fileId}`);
    expect(await usedBytes(clean, alice)).toBe(5 * KIB);

    expect((await download(clean, bob, young.body.fileId)).status).toBe(200);
    expect(await blobKeys(clean)).toContain(`files/${young.body.fileId}`);
  });

  it("when a record has lost its blob, then after an hour the cleanup removes the record and frees its quota", async () => {
    const [alice, bob] = await pair(clean);
    const { body } = await upload(clean, alice, bob, randomBytes(3 * KIB));
    await clean.blobs.delete(`files/${body.fileId}`);
    expectError(await download(clean, bob, body.fileId), 404, "NOT_FOUND");

    await clean.services.fileCleanup.run();
    expect((await fileDoc(body.fileId)).exists).toBe(true); // too young to judge

    clean.clock.advance(ORPHAN_GRACE_MS + 60_000);
    const report = await clean.services.fileCleanup.run();
    expect(report.orphanRecords).toBeGreaterThanOrEqual(1);
    expect((await fileDoc(body.fileId)).exists).toBe(false);
    expect(await usedBytes(clean, alice)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// The BlobStore contract, for each implementation (GcsBlobStore is the only one; the apps above use it too).

/** `open` gives a store to run the contract against, and how to release it. */
type OpenStore = () => Promise<{ store: BlobStore; close(): Promise<void> }>;

function blobStoreContract(name: string, open: OpenStore) {
  describe(`${name} (BlobStore contract)`, () => {
    let store: BlobStore;
    let close = async () => undefined as unknown;
    beforeAll(async () => {
      ({ store, close } = await open());
    });
    afterAll(async () => {
      await close();
    });

    const read = async (key: string) => {
      const stream = await store.read(key);
      if (!stream) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };

    it("when a blob is written, then it reads back byte for byte and is listed under its prefix", async () => {
      const key = `files/${newId("file")}`;
      const data = randomBytes(300 * KIB);
      await store.write(key, Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
      expect((await read(key))!.equals(data)).toBe(true);
      const listed: string[] = [];
      for await (const blob of store.list("files/")) if (blob.key === key) listed.push(`${blob.key}:${blob.size}`);
      expect(listed).toEqual([`${key}:${data.length}`]);
    });

    it("when a key already exists, then writing it again fails and the first blob is intact", async () => {
      const key = `files/${newId("file")}`;
      await store.write(key, Readable.from([Buffer.from("first")]));
      await expect(store.write(key, Readable.from([Buffer.from("second")]))).rejects.toThrow();
      expect((await read(key))!.toString()).toBe("first");
    });

    it("when the source fails midway, then nothing is left at the key", async () => {
      const key = `files/${newId("file")}`;
      // It fails once the store has started reading it (a timer could fire before the store listens).
      let started = false;
      const failing = new Readable({
        read() {
          if (started) return;
          started = true;
          this.push(randomBytes(1000));
          setTimeout(() => this.destroy(new Error("client went away")), 20);
        },
      });
      await expect(store.write(key, failing)).rejects.toThrow("client went away");
      expect(await store.read(key)).toBeUndefined();
    });

    it("when a blob is missing, then read gives undefined and delete is not an error", async () => {
      const key = `files/${newId("file")}`;
      expect(await store.read(key)).toBeUndefined();
      await store.delete(key);
      await store.write(key, Readable.from([Buffer.from("x")]));
      await store.delete(key);
      expect(await store.read(key)).toBeUndefined();
    });

    it("when a key is not a server-minted key, then it is refused before any storage call", async () => {
      for (const key of ["../escape", "files/../../etc/passwd", "files/./x", "/abs", "files//x", "files/a b", ""]) {
        await expect(store.write(key, Readable.from([Buffer.from("x")])), key).rejects.toThrow(/Invalid blob key/);
        await expect(store.read(key), key).rejects.toThrow(/Invalid blob key/);
        await expect(store.delete(key), key).rejects.toThrow(/Invalid blob key/);
      }
    });
  });
}

/**
 * Cloud Storage, through the Admin SDK, against firebase-tools' Storage emulator that the global setup
 * runs for every test run (functions/src/local/storage-emulator.ts). Nothing is skipped: if it cannot
 * start, the whole run fails.
 */
blobStoreContract("GcsBlobStore", async () => {
  if (!process.env.FIREBASE_STORAGE_EMULATOR_HOST) throw new Error("FIREBASE_STORAGE_EMULATOR_HOST is not set: is test/support/worker-setup.ts loaded?");
  // A project (so a bucket) of its own: nothing else in the run lists or deletes these objects.
  const projectId = `demo-blobs-${randomBytes(4).toString("hex")}`;
  const firebase = initializeApp({ projectId, storageBucket: defaultStorageBucket(projectId) }, projectId);
  const bucket = getStorage(firebase).bucket();
  return {
    store: new GcsBlobStore(() => bucket),
    close: async () => {
      await bucket.deleteFiles({ force: true });
      await deleteApp(firebase);
    },
  };
});

describe("the Storage emulator's firebase-tools internals", () => {
  it("when the tests run, then firebase-tools is the exact version the in-process emulator was written against, and what it uses is there", async () => {
    const rootPackage = JSON.parse(await readFile(join(__dirname, "..", "package.json"), "utf8"));
    // Pinned exactly: the emulator is built from firebase-tools' lib/emulator/storage internals, which change without notice.
    expect(rootPackage.devDependencies["firebase-tools"]).toBe(TESTED_FIREBASE_TOOLS_VERSION);
    const lock = JSON.parse(await readFile(join(__dirname, "..", "package-lock.json"), "utf8"));
    expect(lock.packages["node_modules/firebase-tools"].version).toBe(TESTED_FIREBASE_TOOLS_VERSION);
    const tools = loadFirebaseToolsStorage(); // throws, naming what moved
    expect(tools.version).toBe(TESTED_FIREBASE_TOOLS_VERSION);
  });
});
