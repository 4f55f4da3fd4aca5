import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

/**
 * The local stack's emulators run in process groups of their own (so Ctrl-C in a terminal does not
 * reach them before the stack has saved their data), named by pid files in the data folder.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether process `pid` exists (signal 0 only asks). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether any process of the group is left (a negative pid names a group). */
export function isGroupAlive(groupId: number): boolean {
  return isAlive(-groupId);
}

/** The last `max` lines a child wrote (stdout and stderr, both piped), kept to say why it failed. */
export function recentOutput(child: ChildProcess, max: number): string[] {
  const recent: string[] = [];
  const remember = (chunk: Buffer) => {
    recent.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    recent.splice(0, Math.max(0, recent.length - max));
  };
  child.stdout!.on("data", remember);
  child.stderr!.on("data", remember);
  return recent;
}

/** What a keeper process answers to a request over IPC: the request's id, and whether it worked. */
export type IpcReply = { id: number; ok: true } | { id: number; ok: false; error: string };

/**
 * Requests to a keeper process over its IPC channel, each answered by a reply with the same id. A keeper
 * that exits before answering fails the request with `goneError`; one already disconnected is not asked.
 */
export function ipcRequester<Request extends { id: number }>(child: ChildProcess, exited: Promise<void>, goneError: string) {
  let lastId = 0;
  const pending = new Map<number, (reply: IpcReply) => void>();
  child.on("message", (message: Partial<IpcReply>) => {
    if (typeof message.id === "number") pending.get(message.id)?.(message as IpcReply);
  });
  return async (request: Omit<Request, "id">): Promise<void> => {
    if (!child.connected) return;
    const id = ++lastId;
    const reply = await new Promise<IpcReply>((answer) => {
      pending.set(id, answer);
      child.send({ ...request, id });
      void exited.then(() => answer({ id, ok: false, error: goneError }));
    });
    pending.delete(id);
    if (!reply.ok) throw new Error(reply.error);
  };
}

/** Signals a child's whole process group (falling back to the child alone). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * A process group left by a stack that died, named in `pidFile`: its keeper is saving the last data and
 * will then stop by itself, so wait for that (the save is what makes the data survive); kill it only
 * if it hangs. Only processes whose command line contains one of `markers` are touched (the pid may
 * have been reused). Called only once the caller holds the data folder's lock (stack-lock.ts), so it
 * never touches the emulator of a stack that is still running.
 */
export async function settleLeftover(pidFile: string, markers: string[], what: string, log: (message: string) => void, waitMs = 30_000): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  rmSync(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = "";
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return; // not running (or no /proc to check, in which case we leave it alone)
  }
  if (!markers.some((marker) => cmdline.includes(marker))) return;
  log(`Waiting for the ${what} of an earlier run (pid ${pid}) to save its data and stop...`);
  const deadline = Date.now() + waitMs;
  while (isGroupAlive(pid) && Date.now() < deadline) await sleep(200);
  if (!isGroupAlive(pid)) return;
  log(`It did not stop within ${waitMs / 1000} s: stopping it.`);
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}
