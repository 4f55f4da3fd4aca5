/**
 * The Firestore emulator's keeper, run as its own process (firestore-emulator.ts spawns it, detached, in
 * a process group with the JVM). It starts the JVM and owns what happens to the data:
 * - on request from its owner (the local stack, over IPC) it exports the data to the snapshot folder;
 * - when the owner disappears without stopping it (SIGKILL, OOM kill, a closed terminal) it exports
 *   once more while the JVM is still alive, then stops the JVM: no acknowledged write is lost;
 * - on SIGTERM/SIGINT (a normal stop, after the owner's own export) it just stops the JVM;
 * - if the JVM dies on its own it exits with JVM_DIED, so the owner can tell the emulator is gone.
 *
 * Usage: node emulator-watchdog.js <owner pid> <export plan JSON or -> <java> <java args...>
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { isAlive, type IpcReply } from "./processes";

/** The watchdog's exit code when the JVM exited without being asked to. */
export const JVM_DIED = 3;
export const SNAPSHOT_NAME = "snapshot";
const OWNER_POLL_MS = 250;
const JVM_STOP_GRACE_MS = 5000;

export interface ExportPlan {
  /** The emulator's base URL, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  projectId: string;
  /** Where the snapshot lives: <dataDir>/firestore. */
  snapshotDir: string;
}

/** Messages between the owner and the watchdog (IPC). */
export type WatchdogRequest = { id: number; command: "export" };

/**
 * Exports the emulator's data to `<snapshotDir>.next`, then swaps it in: a snapshot folder is always
 * complete, so an export interrupted midway loses nothing.
 */
export async function exportSnapshot({ baseUrl, projectId, snapshotDir }: ExportPlan): Promise<void> {
  const next = `${snapshotDir}.next`;
  const previous = `${snapshotDir}.previous`;
  rmSync(next, { recursive: true, force: true });
  mkdirSync(next, { recursive: true });
  const response = await fetch(`${baseUrl}/emulator/v1/projects/${projectId}:export`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ database: `projects/${projectId}/databases/(default)`, export_directory: next, export_name: SNAPSHOT_NAME }),
    signal: AbortSignal.timeout(60_000),
  });
  if (!response.ok) throw new Error(`Firestore export failed: ${response.status} ${await response.text()}`);
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(snapshotDir)) renameSync(snapshotDir, previous);
  renameSync(next, snapshotDir);
  rmSync(previous, { recursive: true, force: true });
}

function main(): void {
  const [ownerArg, planArg, java, ...javaArgs] = process.argv.slice(2);
  const owner = Number(ownerArg);
  const plan = planArg && planArg !== "-" ? (JSON.parse(planArg) as ExportPlan) : undefined;
  if (!Number.isInteger(owner) || !java) {
    process.stderr.write("usage: emulator-watchdog <owner pid> <export plan JSON or -> <java> <args...>\n");
    process.exit(2);
  }

  const jvm = spawn(java, javaArgs, { stdio: ["ignore", "inherit", "inherit"] });
  let stopping = false;
  jvm.once("exit", () => process.exit(stopping ? 0 : JVM_DIED));

  const stopJvm = () => {
    if (stopping) return;
    stopping = true;
    jvm.kill("SIGTERM");
    setTimeout(() => jvm.kill("SIGKILL"), JVM_STOP_GRACE_MS).unref();
  };

  // Exports run one at a time; the owner's and the last one never overlap.
  let exporting: Promise<void> = Promise.resolve();
  const exportNow = () => {
    if (!plan) return Promise.resolve();
    const run = () => exportSnapshot(plan);
    exporting = exporting.then(run, run);
    return exporting;
  };

  let ownerGone = false;
  const onOwnerGone = () => {
    if (ownerGone || stopping) return;
    ownerGone = true;
    exportNow()
      .catch((error: Error) => process.stderr.write(`watchdog: export after the owner died failed: ${error.message}\n`))
      .finally(stopJvm);
  };

  process.on("message", (request: WatchdogRequest) => {
    exportNow().then(
      () => process.send?.({ id: request.id, ok: true } satisfies IpcReply),
      (error: Error) => process.send?.({ id: request.id, ok: false, error: error.message } satisfies IpcReply),
    );
  });
  // The IPC channel closes the moment the owner dies; the poll covers an owner started without one.
  process.on("disconnect", onOwnerGone);
  setInterval(() => {
    if (!isAlive(owner)) onOwnerGone();
  }, OWNER_POLL_MS);

  // A normal stop: the owner exported already. (During an owner-death export, let it finish first.)
  const onSignal = () => void exporting.finally(stopJvm);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

if (require.main === module) main();
