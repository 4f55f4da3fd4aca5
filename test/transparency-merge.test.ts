import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TransparencyRepository } from "../functions/src/transparency/repository";
import { newPublicKeyPem, registerUser, startTestApp, type TestApp } from "./support/app";

/**
 * The merge-delay bound (contract: locally at most 5 s) with the sequencer as it runs for real: in the
 * relay, every SEQUENCER_INTERVAL_MS, on the emulator.
 */
const MERGE_DELAY_BOUND_MS = 5000;

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({}, { relay: {} });
});
afterAll(async () => app?.close());

const latestSize = async () => (await app.request("GET", "/api/transparency/head")).body.treeSize as number;

async function timeUntil(condition: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > limitMs) return Infinity;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Date.now() - started;
}

describe("the merge delay", () => {
  it("when a user registers, then their key is in a signed head within 5 s", async () => {
    const user = await registerUser(app);
    const delay = await timeUntil(async () => {
      const { body } = await app.request("GET", `/api/transparency/proof/${user.id}`, { token: user.token });
      return body.entries.length === 1 && !body.pending;
    }, 2 * MERGE_DELAY_BOUND_MS);
    expect(delay).toBeLessThanOrEqual(MERGE_DELAY_BOUND_MS);
  });

  it("when bindings keep arriving (10 a second for 3 s), then each one is in a signed head within 5 s of being queued", async () => {
    const log = new TransparencyRepository(app.db);
    const before = await latestSize();
    const COUNT = 30;
    const queuedAt: number[] = [];
    const mergedAt: number[] = [];
    let polling = true;
    // Watch the head: the i-th binding (in merge order, which is queue order here) is in once the size passes before + i.
    const watcher = (async () => {
      while (polling || mergedAt.length < COUNT) {
        const size = await latestSize();
        while (mergedAt.length < COUNT && size >= before + mergedAt.length + 1) mergedAt.push(Date.now());
        if (Date.now() - (queuedAt[COUNT - 1] ?? Date.now()) > 3 * MERGE_DELAY_BOUND_MS) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    for (let i = 0; i < COUNT; i++) {
      const userId = `user_${randomBytes(18).toString("base64url")}`;
      await app.db.runTransaction(async (tx) => {
        log.enqueue(tx, `bind_${randomBytes(12).toString("base64url")}`, { userId, publicKey: newPublicKeyPem(), version: 1, timestamp: new Date().toISOString() }, new Date());
      });
      queuedAt.push(Date.now());
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    polling = false;
    await watcher;
    expect(mergedAt).toHaveLength(COUNT);
    const delays = mergedAt.map((at, i) => at - queuedAt[i]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(MERGE_DELAY_BOUND_MS);
  }, 30_000);
});
