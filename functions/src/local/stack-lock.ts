import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * One local stack per data folder: `<dataDir>/stack.lock` names its owner (pid, URL). A second start on
 * the same folder refuses in one line naming the running one and touches nothing; a lock whose owner is
 * dead is taken over (and only then may a leftover emulator be dealt with).
 */
const LOCK_NAME = "stack.lock";

interface LockOwner {
  pid: number;
  url?: string;
  startedAt: string;
}

export class StackLockedError extends Error {
  override name = "StackLockedError";
}

export interface StackLock {
  /** Records the URL the stack serves, for the message a second start prints. */
  describe(url: string): void;
  /** Removes the lock if it is still ours. */
  release(): void;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, just not ours to signal.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, "utf8")) as LockOwner;
    return Number.isInteger(owner.pid) ? owner : undefined;
  } catch {
    return undefined; // missing, or half-written by a start that died at that moment
  }
}

export function acquireStackLock(dataDir: string): StackLock {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_NAME);
  const mine: LockOwner = { pid: process.pid, startedAt: new Date().toISOString() };
  const draft = `${path}.${process.pid}`;
  // Written whole under a name of our own first, so a reader never sees half a lock.
  const write = (owner: LockOwner) => writeFileSync(draft, JSON.stringify(owner), { mode: 0o600 });

  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      write(mine);
      // A hard link fails if the lock exists: of two starts racing for the folder, one wins.
      linkSync(draft, path);
      rmSync(draft, { force: true });
      return {
        describe(url) {
          write({ ...mine, url });
          renameSync(draft, path);
        },
        release() {
          if (readOwner(path)?.pid === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (error) {
      rmSync(draft, { force: true });
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = readOwner(path);
    if (owner && owner.pid !== process.pid && isRunning(owner.pid)) {
      throw new StackLockedError(
        `Another local stack is already running on ${dataDir}: pid ${owner.pid}${owner.url ? ` at ${owner.url}` : " (starting)"}, since ${owner.startedAt}. Stop it first, or set DATA_DIR to another folder.`,
      );
    }
    // The owner is gone (killed, crashed, rebooted): take the folder over.
    rmSync(path, { force: true });
  }
  throw new StackLockedError(`Could not take ${path}: another start is racing for it. Try again.`);
}
