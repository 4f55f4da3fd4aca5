import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { deleteApp, initializeApp } from "firebase-admin/app";
import { getStorage } from "firebase-admin/storage";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BlobInfo } from "../functions/src/files/blob-store";
import { GcsBlobStore } from "../functions/src/files/gcs-blob-store";
import { defaultStorageBucket, startStorageEmulator, type RunningStorageEmulator } from "../functions/src/local/storage-emulator";
import { newId } from "../functions/src/shared/ids";

/**
 * The in-process Storage emulator itself (functions/src/local/storage-emulator.ts): what the local stack
 * relies on beyond the BlobStore contract (test/files.test.ts), i.e. data kept across restarts, no
 * overwrite under a race, and the parts of firebase-tools' emulator we answer ourselves.
 * Each test runs an emulator of its own in this worker (firebase-tools allows one per process at a time).
 */

const PROJECT_ID = "demo-storage-emulator";

let dataDir: string;
let running: RunningStorageEmulator | undefined;
const apps: Array<ReturnType<typeof initializeApp>> = [];

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "e2ee-storage-emulator-test-"));
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => deleteApp(app)));
  await running?.stop();
  running = undefined;
  delete process.env.STORAGE_EMULATOR_HOST;
  await rm(dataDir, { recursive: true, force: true });
});

async function start(withData = true): Promise<RunningStorageEmulator> {
  await running?.stop();
  running = await startStorageEmulator({ projectId: PROJECT_ID, dataDir: withData ? dataDir : undefined, log: () => undefined });
  return running;
}

/** GcsBlobStore through firebase-admin, as production uses it, against `emulator`. */
function storeOn(emulator: RunningStorageEmulator): GcsBlobStore {
  // firebase-admin reads the emulator's address when an app's Storage is created; worker-setup's points elsewhere.
  process.env.STORAGE_EMULATOR_HOST = `http://${emulator.hostPort}`;
  const app = initializeApp({ projectId: PROJECT_ID, storageBucket: defaultStorageBucket(PROJECT_ID) }, `storage-${randomBytes(4).toString("hex")}`);
  apps.push(app);
  const bucket = getStorage(app).bucket();
  return new GcsBlobStore(() => bucket);
}

async function readAll(store: GcsBlobStore, key: string): Promise<Buffer | undefined> {
  const stream = await store.read(key);
  if (!stream) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listAll(store: GcsBlobStore): Promise<BlobInfo[]> {
  const blobs: BlobInfo[] = [];
  for await (const blob of store.list("files/")) blobs.push(blob);
  return blobs.sort((a, b) => a.key.localeCompare(b.key));
}

const write = (store: GcsBlobStore, key: string, data: Buffer) => store.write(key, Readable.from([data]));

async function isListening(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve) => {
    const socket = connect(Number(port), host);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("data kept in dataDir", () => {
  it("when bodies are written, then after stop and a start with the same dataDir they read back byte for byte, with their size and time, and still cannot be overwritten", async () => {
    const first = storeOn(await start());
    const small = { key: `files/${newId("file")}`, data: randomBytes(1000) };
    const large = { key: `files/${newId("file")}`, data: randomBytes(5 * 1024 * 1024) };
    await write(first, small.key, small.data);
    await write(first, large.key, large.data);
    const listedBefore = await listAll(first);
    await running!.stop();

    const second = storeOn(await start());
    expect((await readAll(second, small.key))!.equals(small.data)).toBe(true);
    expect((await readAll(second, large.key))!.equals(large.data)).toBe(true);
    expect(await listAll(second)).toEqual(listedBefore);
    await expect(write(second, small.key, Buffer.from("overwrite"))).rejects.toThrow();
    expect((await readAll(second, small.key))!.equals(small.data)).toBe(true);
  });

  it("when a blob is deleted, then after a restart it is still gone", async () => {
    const first = storeOn(await start());
    const key = `files/${newId("file")}`;
    await write(first, key, Buffer.from("short-lived"));
    await running!.exportData();
    await first.delete(key);
    await running!.stop();

    expect(await readAll(storeOn(await start()), key)).toBeUndefined();
  });

  it("when an export was interrupted (a half-written storage.next, or a crash between its two renames), then the last complete export is what starts", async () => {
    const key = `files/${newId("file")}`;
    await write(storeOn(await start()), key, Buffer.from("kept"));
    await running!.stop();

    // Killed while writing the next export: a partial folder beside the complete one.
    await mkdir(join(dataDir, "storage.next", "blobs"), { recursive: true });
    await writeFile(join(dataDir, "storage.next", "buckets.json"), "{ not json");
    expect((await readAll(storeOn(await start()), key))?.toString()).toBe("kept");
    await running!.stop();

    // Killed after moving the old export aside and before moving the new one in.
    await rename(join(dataDir, "storage"), join(dataDir, "storage.previous"));
    expect((await readAll(storeOn(await start()), key))?.toString()).toBe("kept");
  });

  it("when the export cannot be read, then start fails loudly and leaves nothing running", async () => {
    await mkdir(join(dataDir, "storage"), { recursive: true });
    await writeFile(join(dataDir, "storage", "buckets.json"), "{ not json");

    await expect(start()).rejects.toThrow(SyntaxError);
    // Nothing registered is left behind in this process: a new emulator can start.
    await rm(join(dataDir, "storage"), { recursive: true });
    await start();
  });

  it("when stopped, then only the export is left in dataDir, and nothing listens", async () => {
    const emulator = await start();
    await write(storeOn(emulator), `files/${newId("file")}`, Buffer.from("x"));
    await emulator.stop();

    expect((await readdir(dataDir)).sort()).toEqual(["storage"]);
    expect((await readdir(join(dataDir, "storage"))).sort()).toEqual(["blobs", "buckets.json", "metadata"]);
    expect(await isListening(emulator.hostPort)).toBe(false);
  });

  it("when there is no dataDir, then nothing is kept: a new emulator starts empty and exportData does nothing", async () => {
    const key = `files/${newId("file")}`;
    const emulator = await start(false);
    await write(storeOn(emulator), key, Buffer.from("gone"));
    await emulator.exportData();
    await emulator.stop();

    expect(await readAll(storeOn(await start(false)), key)).toBeUndefined();
    expect(existsSync(join(dataDir, "storage"))).toBe(false);
  });
});

describe("what the emulator answers beyond firebase-tools", () => {
  it("when two uploads of the same new key race, then exactly one is stored and the other is refused", async () => {
    const store = storeOn(await start(false));
    for (let round = 0; round < 5; round++) {
      const key = `files/${newId("file")}`;
      const bodies = [randomBytes(256 * 1024), randomBytes(256 * 1024)];
      const results = await Promise.allSettled(bodies.map((body) => write(store, key, body)));
      const stored = results.findIndex((result) => result.status === "fulfilled");
      expect(results.map((result) => result.status).sort()).toEqual(["fulfilled", "rejected"]);
      expect((await readAll(store, key))!.equals(bodies[stored]!)).toBe(true);
    }
  });

  it("when cleared, then every object is forgotten and the emulator keeps working", async () => {
    const emulator = await start(false);
    const store = storeOn(emulator);
    const key = `files/${newId("file")}`;
    await write(store, key, Buffer.from("before"));
    await emulator.clear();

    expect(await readAll(store, key)).toBeUndefined();
    expect(await listAll(store)).toEqual([]);
    await write(store, key, Buffer.from("after"));
    expect((await readAll(store, key))?.toString()).toBe("after");
  });

  it("when rules are set (as @firebase/rules-unit-testing does), then 501, and the emulator is still up", async () => {
    const emulator = await start(false);
    const response = await fetch(`http://${emulator.hostPort}/internal/setRules`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rules: { files: [{ name: "storage.rules", content: "rules_version = '2';" }] } }),
    });
    expect(response.status).toBe(501);
    const key = `files/${newId("file")}`;
    await write(storeOn(emulator), key, Buffer.from("still up"));
  });

  it("when a client SDK request (no rules loaded) reads an object, then it is denied", async () => {
    const emulator = await start(false);
    const key = `files/${newId("file")}`;
    await write(storeOn(emulator), key, Buffer.from("secret"));
    const bucket = defaultStorageBucket(PROJECT_ID);
    const response = await fetch(`http://${emulator.hostPort}/v0/b/${bucket}/o/${encodeURIComponent(key)}?alt=media`);
    expect(response.status).toBe(403);
  });
});
