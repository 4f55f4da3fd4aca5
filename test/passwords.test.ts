import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import type { Worker } from "node:worker_threads";
import bcrypt from "bcryptjs";
import { afterEach, describe, expect, it } from "vitest";
import { createPasswordHasher, PasswordWorkerError, type PasswordHasher } from "../functions/src/auth/passwords";

/**
 * The password hasher on its own: bcryptjs in worker threads. Stored hashes from before the pool
 * (bcryptjs on the main thread) must keep working, bcrypt's 72-byte truncation must never let a
 * longer password in, a crashed worker must fail only its own call, and the event loop must stay free
 * while passwords are hashed (bench/passwords.mjs measures how free, and how many logins per second).
 */

const PASSWORD = "correct horse battery staple";
/** Made by bcryptjs 3 on the main thread (the hasher before the pool), cost 4. */
const OLD_HASH_2B = "$2b$04$QDcGaU65qXW5LkkJQ13iDenc/HWEFcFEQsIZEV3yk9eAkWJ8nQK0K";
/** The same hash under the $2a$ prefix that bcryptjs 2 wrote; for passwords this short they are equal. */
const OLD_HASH_2A = OLD_HASH_2B.replace("$2b$", "$2a$");
/** 72 bytes of UTF-8: 36 one-byte and 18 two-byte characters. */
const PASSWORD_72_BYTES = "p".repeat(36) + "é".repeat(18);

const hashers: PasswordHasher[] = [];
function hasher(options: { cost?: number; workers?: number; onWorkerStart?: (worker: Worker) => void } = {}): PasswordHasher {
  const created = createPasswordHasher({ cost: 4, workers: 2, ...options });
  hashers.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(hashers.splice(0).map((created) => created.close()));
});

describe("stored hashes", () => {
  it("when a hash made by bcryptjs before the pool is checked, then its password verifies and others do not", async () => {
    const passwords = hasher();
    const madeInThread = bcrypt.hashSync(PASSWORD, 4);

    for (const stored of [OLD_HASH_2B, OLD_HASH_2A, madeInThread]) {
      expect(await passwords.verify(PASSWORD, stored), stored).toBe(true);
      expect(await passwords.verify(`${PASSWORD}!`, stored), stored).toBe(false);
      expect(await passwords.verify(PASSWORD.toUpperCase(), stored), stored).toBe(false);
    }
  });

  it("when the pool hashes a password, then bcryptjs on its own verifies it (same format) at the configured cost", async () => {
    const stored = await hasher({ cost: 5 }).hash(PASSWORD);

    expect(stored).toMatch(/^\$2b\$05\$[./A-Za-z0-9]{53}$/);
    expect(bcrypt.compareSync(PASSWORD, stored)).toBe(true);
  });

  it("when the stored value is not a bcrypt hash, then nothing verifies against it (as with bcryptjs before)", async () => {
    expect(await hasher().verify(PASSWORD, "not a hash")).toBe(false);
    expect(await bcrypt.compare(PASSWORD, "not a hash")).toBe(false);
  });
});

describe("bcrypt's 72-byte limit", () => {
  it("when a 72-byte password is followed by more, then it does not verify, though bcrypt alone would say it does", async () => {
    const passwords = hasher();
    const stored = await passwords.hash(PASSWORD_72_BYTES);
    expect(bcrypt.compareSync(`${PASSWORD_72_BYTES}x`, stored)).toBe(true); // what this guards against

    expect(await passwords.verify(PASSWORD_72_BYTES, stored)).toBe(true);
    expect(await passwords.verify(`${PASSWORD_72_BYTES}x`, stored)).toBe(false);
    expect(await passwords.verify(`${PASSWORD_72_BYTES}é`, stored)).toBe(false);
    expect(await passwords.verifyAgainstDummy(`${PASSWORD_72_BYTES}x`)).toBe(false);
  });

  it("when a password over 72 bytes is hashed, then it is refused", async () => {
    await expect(hasher().hash(`${PASSWORD_72_BYTES}!`)).rejects.toThrow(RangeError);
  });
});

describe("the worker pool", () => {
  it("when 20 passwords are hashed at once on 2 workers, then each hash is its own and verifies", async () => {
    const started: Worker[] = [];
    const passwords = hasher({ workers: 2, onWorkerStart: (worker) => started.push(worker) });
    const inputs = Array.from({ length: 20 }, (_, index) => `password number ${index}`);

    const hashes = await Promise.all(inputs.map((password) => passwords.hash(password)));

    expect(new Set(hashes).size).toBe(20);
    const checks = await Promise.all(inputs.map((password, index) => passwords.verify(password, hashes[index])));
    const crossed = await Promise.all(inputs.map((password, index) => passwords.verify(password, hashes[(index + 1) % 20])));
    expect(checks.every(Boolean)).toBe(true);
    expect(crossed.some(Boolean)).toBe(false);
    expect(started).toHaveLength(2);
  });

  it("when nothing has been hashed yet, then no worker has started", async () => {
    const started: Worker[] = [];
    hasher({ onWorkerStart: (worker) => started.push(worker) });

    expect(started).toHaveLength(0);
  });

  it("when a worker is killed mid-hash, then that call fails with an error and the next call gets a new worker", async () => {
    const started: Worker[] = [];
    const passwords = hasher({ cost: 12, workers: 1, onWorkerStart: (worker) => started.push(worker) });

    const killed = passwords.hash(PASSWORD);
    expect(started).toHaveLength(1);
    await started[0].terminate();

    await expect(killed).rejects.toThrow(PasswordWorkerError);
    const stored = await passwords.hash(PASSWORD);
    expect(started).toHaveLength(2);
    expect(bcrypt.compareSync(PASSWORD, stored)).toBe(true);
  });

  it("when calls are waiting behind a worker that is killed, then they still complete on its replacement", async () => {
    const started: Worker[] = [];
    const passwords = hasher({ workers: 1, onWorkerStart: (worker) => started.push(worker) });

    const first = passwords.hash("first password");
    const waiting = [passwords.hash("second password"), passwords.verify(PASSWORD, OLD_HASH_2B)];
    await started[0].terminate();

    await expect(first).rejects.toThrow(PasswordWorkerError);
    const [second, verified] = await Promise.all(waiting);
    expect(bcrypt.compareSync("second password", second as string)).toBe(true);
    expect(verified).toBe(true);
  });

  it("when the hasher is closed, then waiting calls fail and later calls are refused", async () => {
    const passwords = hasher({ cost: 10, workers: 1 });
    const calls = Promise.allSettled([passwords.hash("a password"), passwords.hash("another one")]);

    await passwords.close();

    for (const call of await calls) {
      expect(call.status).toBe("rejected");
      expect((call as PromiseRejectedResult).reason).toBeInstanceOf(PasswordWorkerError);
    }
    await expect(passwords.verify(PASSWORD, OLD_HASH_2B)).rejects.toThrow(/closed/);
  });

  it("when a script hashes and never closes the hasher, then it still exits (idle workers are unref'd)", async () => {
    const script = `
      const { createPasswordHasher } = require(${JSON.stringify(resolve(__dirname, "..", "functions", "lib", "auth", "passwords.js"))});
      createPasswordHasher({ cost: 4, workers: 2 }).hash("a password").then((hash) => console.log(hash));
    `;

    const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], { timeout: 20_000 });

    expect(stdout.trim()).toMatch(/^\$2b\$04\$/);
  });
});

describe("the event loop while passwords are hashed", () => {
  it("when 10 passwords are hashed at cost 11 at once, then timers still fire on time", async () => {
    const passwords = hasher({ cost: 11, workers: 2 });
    const lateness = tickLateness();

    await Promise.all(Array.from({ length: 10 }, (_, index) => passwords.hash(`password ${index}`)));

    const late = lateness.stop();
    // bcryptjs on the main thread runs in slices of up to 100 ms: nearly every 10 ms tick is then late
    // by 50-100 ms. With the work in threads the median is a few ms, even on a busy 2-core machine
    // (the median, not the tail: another process taking the core for a moment must not fail this).
    expect(late.length).toBeGreaterThan(20);
    expect(median(late)).toBeLessThan(25);
  });
});

/** Starts a 10 ms ticker; stop() returns how late (ms) each tick fired. */
function tickLateness(intervalMs = 10): { stop(): number[] } {
  const late: number[] = [];
  let expected = performance.now() + intervalMs;
  let timer = setTimeout(function tick() {
    const now = performance.now();
    late.push(now - expected);
    expected = now + intervalMs;
    timer = setTimeout(tick, intervalMs);
  }, intervalMs);
  return {
    stop() {
      clearTimeout(timer);
      return late;
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
