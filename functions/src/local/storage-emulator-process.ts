/**
 * The local stack's Storage emulator (storage-emulator.ts) in a process of its own, for the same reason
 * the Firestore emulator has a watchdog: its objects' metadata lives in memory until exported, so if the
 * stack dies without stopping it (SIGKILL, OOM kill, a closed terminal) this process notices (its IPC
 * channel closes), exports, and exits. Uploaded file bodies survive whatever happens to the stack.
 *
 * Parent side: startStorageEmulatorProcess(). Child side: main(), run as
 *   node storage-emulator-process.js <owner pid> <options JSON>
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ipcRequester, isAlive, killGroup, recentOutput, settleLeftover, type IpcReply } from "./processes";
import { startStorageEmulator, type RunningStorageEmulator } from "./storage-emulator";

const SCRIPT = resolve(__dirname, "..", "..", "lib", "local", "storage-emulator-process.js");
const OWNER_POLL_MS = 250;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

interface ChildOptions {
  projectId: string;
  host: string;
  dataDir: string;
}

type ChildMessage = { ready: true; hostPort: string } | { failed: string } | IpcReply;

export interface StorageEmulatorProcess {
  /** host:port, the value for FIREBASE_STORAGE_EMULATOR_HOST. */
  readonly hostPort: string;
  exportData(): Promise<void>;
  /** Exports, then ends the process and waits for it to be gone. */
  stop(): Promise<void>;
}

export async function startStorageEmulatorProcess(options: {
  projectId: string;
  dataDir: string;
  host?: string;
  log?: (message: string) => void;
  /** Called if the process exits while running without having been stopped. */
  onUnexpectedExit?: (description: string) => void;
}): Promise<StorageEmulatorProcess> {
  const log = options.log ?? ((message: string) => process.stderr.write(message + "\n"));
  const { dataDir, projectId } = options;
  mkdirSync(dataDir, { recursive: true });
  const pidFile = join(dataDir, "storage-emulator.pid");
  await settleLeftover(pidFile, ["storage-emulator-process"], "Storage emulator", log);
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: build first (npm run build).`);

  const childOptions: ChildOptions = { projectId, dataDir, host: options.host ?? "127.0.0.1" };
  const child = spawn(process.execPath, [SCRIPT, String(process.pid), JSON.stringify(childOptions)], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  if (child.pid) writeFileSync(pidFile, String(child.pid));
  const recent = recentOutput(child, 20);
  const killOnExit = () => killGroup(child, "SIGKILL");
  process.on("exit", killOnExit);

  let stopping: Promise<void> | undefined;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));

  const hostPort = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`The Storage emulator did not start within ${START_TIMEOUT_MS / 1000} s:\n${recent.join("\n")}`)), START_TIMEOUT_MS);
    child.on("message", (message: ChildMessage) => {
      if ("ready" in message) {
        clearTimeout(timer);
        ready(message.hostPort);
      } else if ("failed" in message) {
        clearTimeout(timer);
        fail(new Error(`The Storage emulator could not start: ${message.failed}`));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`The Storage emulator exited during start-up (code ${code}):\n${recent.join("\n")}`));
    });
  }).catch((error: Error) => {
    killGroup(child, "SIGKILL");
    process.off("exit", killOnExit);
    rmSync(pidFile, { force: true });
    throw error;
  });

  child.once("exit", (code, signal) => {
    if (!stopping) options.onUnexpectedExit?.(`the Storage emulator's process exited (${signal ?? `code ${code}`}):\n${recent.slice(-10).join("\n")}`);
  });

  // The only request the child takes is "export now".
  const askChild = ipcRequester<{ id: number }>(child, exited, "the Storage emulator exited");
  const exportData = () => askChild({});

  const stop = () =>
    (stopping ??= (async () => {
      // The child exports on SIGTERM, then exits.
      killGroup(child, "SIGTERM");
      const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_TIMEOUT_MS))]);
      if (!gone) {
        log("The Storage emulator did not stop in time: killing it.");
        killGroup(child, "SIGKILL");
        await exited;
      }
      process.off("exit", killOnExit);
      rmSync(pidFile, { force: true });
    })());

  return { hostPort, exportData, stop };
}

/** The child: runs the emulator until told to stop or until its owner is gone; exports on the way out. */
async function main(): Promise<void> {
  const [ownerArg, optionsArg] = process.argv.slice(2);
  const owner = Number(ownerArg);
  const options = JSON.parse(optionsArg!) as ChildOptions;
  let emulator: RunningStorageEmulator;
  try {
    emulator = await startStorageEmulator({ ...options, log: (message) => process.stdout.write(message + "\n") });
  } catch (error) {
    process.send?.({ failed: (error as Error).message } satisfies ChildMessage);
    process.exit(1);
  }
  let ending = false;
  const end = (reason: string) => {
    if (ending) return;
    ending = true;
    emulator
      .stop() // exports first
      .then(
        () => process.exit(0),
        (error: Error) => {
          process.stderr.write(`Storage emulator: stopping after ${reason} failed: ${error.message}\n`);
          process.exit(1);
        },
      );
  };
  process.on("message", (request: { id: number }) => {
    emulator.exportData().then(
      () => process.send?.({ id: request.id, ok: true } satisfies ChildMessage),
      (error: Error) => process.send?.({ id: request.id, ok: false, error: error.message } satisfies ChildMessage),
    );
  });
  process.on("disconnect", () => end("its owner died"));
  process.on("SIGTERM", () => end("SIGTERM"));
  process.on("SIGINT", () => end("SIGINT"));
  setInterval(() => {
    if (!isAlive(owner)) end("its owner died");
  }, OWNER_POLL_MS).unref();
  process.send?.({ ready: true, hostPort: emulator.hostPort } satisfies ChildMessage);
}

if (require.main === module) void main();
