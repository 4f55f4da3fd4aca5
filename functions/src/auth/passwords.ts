import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { MAX_PASSWORD_BYTES } from "./schema";

/**
 * bcrypt (bcryptjs: its algorithm and hash format, so every stored hash keeps working) run in a small
 * pool of worker threads. At cost 12 one hash or compare is about 0.3 s of CPU: on the main thread it
 * stalls every request and socket of the instance (issue #15), in a worker it stalls nothing.
 */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Burns the same time as a real check, so an unknown email is not told apart by latency. */
  verifyAgainstDummy(password: string): Promise<false>;
  /** Stops the worker threads; calls still waiting fail. Idle workers never keep a process alive anyway. */
  close(): Promise<void>;
}

export interface PasswordHasherOptions {
  cost: number;
  /** Worker threads at most; each is started on first need. */
  workers: number;
  /** Called with each worker thread as it starts (tests use it to kill one). */
  onWorkerStart?: (worker: Worker) => void;
}

type Job = { op: "hash"; password: string; cost: number } | { op: "compare"; password: string; hash: string };
type Reply = { ok: true; value: string | boolean } | { ok: false; message: string };

/**
 * The worker's whole program, run with `eval: true`. It is source text rather than a file so that it
 * runs the same from functions/lib (production, the local stack, the benchmarks) and from the TS
 * sources under vitest, with no compiled file that could be missing from a deploy or older than the
 * source it is tested with. bcryptjs is loaded by the absolute path resolved here, because an eval'd
 * worker resolves bare module names from the working directory, not from this package.
 * Sync calls: the thread has nothing else to do, and sync bcryptjs skips the async version's yielding.
 *
 * On Linux the thread lowers its own priority (a thread's nice value is its own there): when the cores
 * are all busy with bcrypt, the event loop still gets one the moment it has work, instead of waiting
 * for a scheduler slice. Measured on 2 busy cores during 10 logins at cost 12 (the ping of
 * bench/passwords.mjs): p99 12-29 ms at equal priority, 2 ms with this, at the same logins per second.
 * Elsewhere, or if refused, it is skipped.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const bcrypt = require(workerData.bcryptjs);
try {
  const threadId = Number(require("node:fs").readlinkSync("/proc/thread-self").split("/").pop());
  require("node:os").setPriority(threadId, workerData.niceness);
} catch {
  // not Linux, or not allowed: the thread keeps the process's priority
}
parentPort.on("message", (job) => {
  try {
    const value = job.op === "hash" ? bcrypt.hashSync(job.password, job.cost) : bcrypt.compareSync(job.password, job.hash);
    parentPort.postMessage({ ok: true, value });
  } catch (error) {
    parentPort.postMessage({ ok: false, message: error instanceof Error ? error.message : String(error) });
  }
});
`;

const BCRYPTJS_PATH = createRequire(__filename).resolve("bcryptjs");
/** The workers' nice value: 10 of 19, so the event loop's thread (0) comes first but bcrypt never starves. */
const WORKER_NICENESS = 10;

/** A call that did not get an answer: its worker crashed or was stopped. */
export class PasswordWorkerError extends Error {
  override name = "PasswordWorkerError";
}

interface Task {
  job: Job;
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

/**
 * One job per worker at a time; the rest wait in order. A worker is unref'd while idle (it never keeps
 * a process alive) and ref'd while it works (a script awaiting a hash still gets its answer). A worker
 * that errors or exits fails the one job it held and is dropped; the next job starts a fresh one.
 */
class PasswordWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Task>();
  private readonly queue: Task[] = [];
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly onWorkerStart?: (worker: Worker) => void,
  ) {}

  run(job: Job): Promise<string | boolean> {
    if (this.closed) return Promise.reject(new PasswordWorkerError("the password hasher is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new PasswordWorkerError("the password hasher is closed"));
    await Promise.all([...this.idle, ...this.busy.keys()].map((worker) => worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.busy.size < this.size ? this.start() : undefined);
      if (!worker) return;
      const task = this.queue.shift()!;
      this.busy.set(worker, task);
      worker.ref();
      worker.postMessage(task.job);
    }
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs: BCRYPTJS_PATH, niceness: WORKER_NICENESS } });
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const task = this.busy.get(worker);
      this.busy.delete(worker);
      worker.unref();
      this.idle.push(worker);
      if (reply.ok) task?.resolve(reply.value);
      else task?.reject(new Error(reply.message));
      this.dispatch();
    });
    worker.on("error", (error) => this.drop(worker, new PasswordWorkerError(`password worker failed: ${error.message}`)));
    worker.on("exit", (code) => this.drop(worker, new PasswordWorkerError(`password worker exited with code ${code}`)));
    this.onWorkerStart?.(worker);
    return worker;
  }

  /** Forgets a worker that errored or exited, failing the job it held; waiting jobs get a new worker. */
  private drop(worker: Worker, error: Error): void {
    const task = this.busy.get(worker);
    this.busy.delete(worker);
    const index = this.idle.indexOf(worker);
    if (index >= 0) this.idle.splice(index, 1);
    task?.reject(error);
    if (!this.closed) this.dispatch();
  }
}

/**
 * bcrypt reads only the first 72 bytes, so a longer password would match the hash of its first 72.
 * The API refuses such passwords (auth/schema.ts); this holds the rule for any other caller too.
 */
const tooLong = (password: string) => Buffer.byteLength(password, "utf8") > MAX_PASSWORD_BYTES;

export function createPasswordHasher({ cost, workers, onWorkerStart }: PasswordHasherOptions): PasswordHasher {
  const pool = new PasswordWorkerPool(workers, onWorkerStart);
  const hash = async (password: string) => {
    if (tooLong(password)) throw new RangeError(`a password is at most ${MAX_PASSWORD_BYTES} bytes for bcrypt`);
    return (await pool.run({ op: "hash", password, cost })) as string;
  };
  const verify = async (password: string, passwordHash: string) =>
    !tooLong(password) && ((await pool.run({ op: "compare", password, hash: passwordHash })) as boolean);
  let dummyHash: Promise<string> | undefined;
  return {
    hash,
    verify,
    async verifyAgainstDummy(password) {
      // A failed attempt (a crashed worker) is not remembered: the next call makes the hash again.
      dummyHash ??= hash("dummy password for timing").catch((error: Error) => {
        dummyHash = undefined;
        throw error;
      });
      await verify(password, await dummyHash);
      return false;
    },
    close: () => pool.close(),
  };
}
