import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

/**
 * The local stack's emulators run in process groups of their own (so Ctrl-C in a terminal does not
 * reach them before the stack has saved their data), named by pid files in the data folder.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function isGroupAlive(groupId: number): boolean {
  try {
    process.kill(-groupId, 0);
    return true;
  } catch {
    return false;
  }
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
