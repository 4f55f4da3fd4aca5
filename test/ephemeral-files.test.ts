import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { registerUser, type RegisteredUser, type TestApp, startTestApp } from "./support/app";
import { expectError } from "./support/expect-error";
import { closeAllSockets, collect, connectAs, waitFor } from "./support/sockets";
import { send, uploadForm } from "./security/support";

/**
 * Attachments that clean themselves up (CONTRACT.md, "Ephemeral content"): real HTTP against the app,
 * the Firestore and Storage emulators, and the relay for the uploader's `file_deleted`.
 */

const KIB = 1024;
const MIB = 1024 * KIB;
const DAY_SECONDS = 24 * 60 * 60;

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({}, { relay: {} });
});
afterEach(() => closeAllSockets());
afterAll(async () => {
  await app.close();
});

const trio = async (): Promise<[RegisteredUser, RegisteredUser, RegisteredUser]> =>
  Promise.all([registerUser(app), registerUser(app), registerUser(app)]);

/** The upload as the frontend sends it (FormData); the big one here gets 30 s. */
const upload = (on: TestApp, from: RegisteredUser, to: RegisteredUser, data: Buffer, fields: Record<string, string> = {}) =>
  send(on, "POST", "/api/files/upload", { authorization: `Bearer ${from.token}`, body: uploadForm(to.id, data, fields), timeoutMs: 30_000 });
const meta = (user: RegisteredUser, fileId: string) => app.request("GET", `/api/files/${fileId}/meta`, { token: user.token });
const download = (user: RegisteredUser, fileId: string) => send(app, "GET", `/api/files/${fileId}`, { authorization: `Bearer ${user.token}`, timeoutMs: 30_000 });
const remove = (user: RegisteredUser, fileId: string) => app.request("DELETE", `/api/files/${fileId}`, { token: user.token });

async function usedBytes(user: RegisteredUser): Promise<number> {
  return ((await app.db.collection("fileUsage").doc(user.id).get()).data()?.bytes as number | undefined) ?? 0;
}

async function blobExists(fileId: string): Promise<boolean> {
  for await (const blob of app.blobs.list(`files/${fileId}`)) if (blob.key === `files/${fileId}`) return true;
  return false;
}

/** Meta, download and delete all answer `status`/`code` to this user. */
async function expectEverywhere(user: RegisteredUser, fileId: string, status: number, code: string) {
  expectError(await meta(user, fileId), status, code);
  expectError(await download(user, fileId), status, code);
  expectError(await remove(user, fileId), status, code);
}

/**
 * Starts a download on a raw connection and cuts it after the first bytes of the body arrive: what a
 * browser tab closed mid-download does. Resolves with the bytes received before the cut.
 */
function brokenDownload(user: RegisteredUser, fileId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${app.baseUrl}/api/files/${fileId}`, { headers: { Authorization: `Bearer ${user.token}` } });
    request.on("response", (response) => {
      if (response.statusCode !== 200) reject(new Error(`download answered ${response.statusCode}`));
      response.on("error", () => undefined); // "aborted": we cut it ourselves
      response.once("data", (chunk: Buffer) => {
        request.destroy(); // the socket closes with most of the body unsent
        resolve(chunk.length);
      });
    });
    request.on("error", (error) => {
      if (!request.destroyed) reject(error);
    });
    request.end();
  });
}

/** Collects `file_deleted` on a socket of this user. */
async function fileDeletedEvents(user: RegisteredUser): Promise<{ socket: Socket; seen: Array<{ fileId: string; reason: string }> }> {
  const socket = await connectAs(app, user.token);
  return { socket, seen: collect(socket, "file_deleted") };
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("POST /api/files/upload: expiresInSeconds and deleteAfterDownload", () => {
  it("when neither is given, then the file lives FILE_TTL_DAYS and is not deleted after download; both show in the record", async () => {
    const [alice, bob] = await trio();
    const answer = await upload(app, alice, bob, randomBytes(KIB));
    expect(answer.status).toBe(201);
    const { file } = answer.body;
    expect(file.deleteAfterDownload).toBe(false);
    expect(Date.parse(file.expiresAt) - Date.parse(file.uploadedAt)).toBe(30 * DAY_SECONDS * 1000);
    expect((await meta(bob, file.id)).body.file).toEqual(file);
  });

  it("when both are given, then the record carries them: expiresAt = uploadedAt + expiresInSeconds", async () => {
    const [alice, bob] = await trio();
    const answer = await upload(app, alice, bob, randomBytes(KIB), { expiresInSeconds: "3600", deleteAfterDownload: "true" });
    expect(answer.status).toBe(201);
    const { file } = answer.body;
    expect(file.deleteAfterDownload).toBe(true);
    expect(Date.parse(file.expiresAt) - Date.parse(file.uploadedAt)).toBe(3600 * 1000);
    expect((await meta(alice, file.id)).body.file).toMatchObject({ deleteAfterDownload: true, expiresAt: file.expiresAt });
  });

  it("when either is malformed or out of range, then 400 naming it, and nothing is stored", async () => {
    const [alice, bob] = await trio();
    const refusals: Array<[string, string]> = [
      ["expiresInSeconds", "59"],
      ["expiresInSeconds", String(30 * DAY_SECONDS + 1)],
      ["expiresInSeconds", "one hour"],
      ["expiresInSeconds", "60.5"],
      ["expiresInSeconds", ""],
      ["deleteAfterDownload", "yes"],
      ["deleteAfterDownload", "1"],
    ];
    for (const [field, value] of refusals) {
      expectError(await upload(app, alice, bob, randomBytes(KIB), { [field]: value }), 400, "VALIDATION_ERROR", field);
    }
    expect(await usedBytes(alice)).toBe(0);
    expect((await app.db.collection("files").where("uploaderId", "==", alice.id).count().get()).data().count).toBe(0);
  });

  it("when the server's FILE_TTL_DAYS is shorter, then that is the maximum (and the default)", async () => {
    const short = await startTestApp({ FILE_TTL_DAYS: "1" });
    try {
      const [alice, bob] = await Promise.all([registerUser(short), registerUser(short)]);
      expectError(await upload(short, alice, bob, randomBytes(KIB), { expiresInSeconds: String(DAY_SECONDS + 1) }), 400, "VALIDATION_ERROR", "expiresInSeconds");
      const longest = await upload(short, alice, bob, randomBytes(KIB), { expiresInSeconds: String(DAY_SECONDS) });
      expect(longest.status).toBe(201);
      const byDefault = (await upload(short, alice, bob, randomBytes(KIB))).body.file;
      expect(Date.parse(byDefault.expiresAt) - Date.parse(byDefault.uploadedAt)).toBe(DAY_SECONDS * 1000);
    } finally {
      await short.close();
    }
  });
});

describe("deleteAfterDownload", () => {
  it("when the receiver's download breaks mid-body, then the file stays; after one complete download it is gone (410 to both, 404 to others), quota given back, the uploader told once", { timeout: 90_000 }, async () => {
    const [alice, bob, mallory] = await trio();
    const { seen } = await fileDeletedEvents(alice);
    const data = randomBytes(16 * MIB); // far more than the connection's buffers: a cut really is mid-body
    const uploaded = await upload(app, alice, bob, data, { deleteAfterDownload: "true" });
    expect(uploaded.status).toBe(201);
    const fileId = uploaded.body.fileId as string;
    expect(await usedBytes(alice)).toBe(data.length);

    // The uploader fetching her own file deletes nothing.
    const own = await download(alice, fileId);
    expect(own.status).toBe(200);
    expect(own.bytes.equals(data)).toBe(true);

    // Nor does a HEAD request (no body is sent).
    expect((await send(app, "HEAD", `/api/files/${fileId}`, { authorization: `Bearer ${bob.token}` })).status).toBe(200);
    await settle(300);
    expect((await meta(bob, fileId)).status).toBe(200);

    // A broken download does not count.
    const received = await brokenDownload(bob, fileId);
    expect(received).toBeLessThan(data.length);
    await settle(1000); // the server has seen the connection close
    expect((await meta(bob, fileId)).status).toBe(200);
    expect((await meta(alice, fileId)).status).toBe(200);
    expect(await blobExists(fileId)).toBe(true);
    expect(await usedBytes(alice)).toBe(data.length);
    expectError(await meta(mallory, fileId), 404, "NOT_FOUND");

    // One complete download: the receiver has every byte, then the file is gone.
    const complete = await download(bob, fileId);
    expect(complete.status).toBe(200);
    expect(complete.bytes.equals(data)).toBe(true);
    // The deletion commits once the response has finished, right after the client has the last byte.
    await waitFor(async () => (await meta(alice, fileId)).status === 410, 10_000, "the file to be gone");
    await expectEverywhere(bob, fileId, 410, "FILE_GONE");
    await expectEverywhere(alice, fileId, 410, "FILE_GONE");
    await expectEverywhere(mallory, fileId, 404, "NOT_FOUND");
    // Word for word what a file that never existed answers a stranger.
    expect((await meta(mallory, fileId)).body).toEqual((await meta(mallory, "file_" + "x".repeat(24))).body);

    expect(await blobExists(fileId)).toBe(false);
    expect(await usedBytes(alice)).toBe(0);
    await waitFor(() => seen.length > 0, 10_000, "file_deleted");
    await settle(500);
    expect(seen).toEqual([{ fileId, reason: "downloaded" }]);
  });

  it("when the file was not uploaded with deleteAfterDownload, then any number of complete downloads leave it", async () => {
    const [alice, bob] = await trio();
    const { seen } = await fileDeletedEvents(alice);
    const data = randomBytes(64 * KIB);
    const { body } = await upload(app, alice, bob, data);
    for (let round = 0; round < 2; round += 1) expect((await download(bob, body.fileId)).bytes.equals(data)).toBe(true);
    await settle(300);
    expect((await meta(bob, body.fileId)).status).toBe(200);
    expect(seen).toEqual([]);
  });

  it("when the uploader deletes the file herself, then 404 afterwards as before, and no file_deleted", async () => {
    const [alice, bob] = await trio();
    const { seen } = await fileDeletedEvents(alice);
    const { body } = await upload(app, alice, bob, randomBytes(KIB), { deleteAfterDownload: "true" });
    expect((await remove(alice, body.fileId)).status).toBe(200);
    expectError(await meta(bob, body.fileId), 404, "NOT_FOUND");
    await settle(300);
    expect(seen).toEqual([]);
  });
});

describe("expiresInSeconds", () => {
  it("when a 60 s file's time is up, then 410 to both parties (before and after the cleanup), 404 to others; concurrent cleanups remove it once, tell the uploader once and give the quota back", { timeout: 60_000 }, async () => {
    const [alice, bob, mallory] = await trio();
    const { seen } = await fileDeletedEvents(alice);
    const data = randomBytes(10 * KIB);
    const uploaded = await upload(app, alice, bob, data, { expiresInSeconds: "60" });
    expect(uploaded.status).toBe(201);
    const fileId = uploaded.body.fileId as string;
    expect(Date.parse(uploaded.body.file.expiresAt) - Date.parse(uploaded.body.file.uploadedAt)).toBe(60_000);

    // Alive: downloadable (and not deleted by it), a stranger sees nothing.
    expect((await download(bob, fileId)).bytes.equals(data)).toBe(true);
    expectError(await meta(mallory, fileId), 404, "NOT_FOUND");
    await app.services.fileCleanup.run();
    expect((await meta(bob, fileId)).status).toBe(200);

    app.clock.advance(61_000);
    // Past its time: gone to its parties at once, before any cleanup ran.
    await expectEverywhere(bob, fileId, 410, "FILE_GONE");
    expectError(await meta(alice, fileId), 410, "FILE_GONE");
    expectError(await meta(mallory, fileId), 404, "NOT_FOUND");

    // Two sweepers at once (a manual run beside the scheduled one, a second instance): one removes it.
    const reports = await Promise.all([app.services.fileCleanup.run(), app.services.fileCleanup.run()]);
    expect(reports.map((report) => report.expiredFiles).reduce((sum, count) => sum + count, 0)).toBe(1);
    expect((await app.db.collection("files").doc(fileId).get()).exists).toBe(false);
    expect(await blobExists(fileId)).toBe(false);
    expect(await usedBytes(alice)).toBe(0);

    await expectEverywhere(bob, fileId, 410, "FILE_GONE");
    await expectEverywhere(alice, fileId, 410, "FILE_GONE");
    await expectEverywhere(mallory, fileId, 404, "NOT_FOUND");

    await waitFor(() => seen.length > 0, 10_000, "file_deleted");
    await app.services.fileCleanup.run(); // a later run finds nothing more to say
    await settle(500);
    expect(seen).toEqual([{ fileId, reason: "expired" }]);
  });
});
