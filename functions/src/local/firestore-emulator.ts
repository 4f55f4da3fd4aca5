import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { ipcRequester, killGroup, recentOutput, settleLeftover } from "./processes";
import { JVM_DIED, SNAPSHOT_NAME, type ExportPlan, type WatchdogRequest } from "./emulator-watchdog";

/**
 * Starts the Cloud Firestore emulator ourselves, because firebase-tools 15 wants Java 21 and downloads
 * its JAR from the internet; the Google Cloud SDK ships the same emulator and it runs on Java 17.
 *
 * Used by the local stack (with a data folder: imported on start, exported periodically, on stop, and
 * by the watchdog when the stack dies without stopping) and by the test run (throwaway, on a free port).
 */

/** The SDK's JAR has no Main-Class; this is the class its `cloud_firestore_emulator` script runs. */
const MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore";
const SDK_RELATIVE_JAR = join("platform", "cloud-firestore-emulator", "cloud-firestore-emulator.jar");
/**
 * The built watchdog (emulator-watchdog.ts): from functions/lib/local and from functions/src/local (tests
 * run the sources; `npm test` builds lib first), the same file.
 */
const WATCHDOG = resolve(__dirname, "..", "..", "lib", "local", "emulator-watchdog.js");

export interface EmulatorLocation {
  jar: string;
  source: "FIRESTORE_EMULATOR_JAR" | "Google Cloud SDK" | "firebase-tools cache";
}

export interface EmulatorOptions {
  projectId: string;
  host?: string;
  /** 0 or absent: a free port. */
  port?: number;
  /** Where the data lives between runs; absent means nothing is kept. */
  dataDir?: string;
  /** How often to export while running, so a crash loses little (only with dataDir). */
  exportIntervalMs?: number;
  env?: NodeJS.ProcessEnv;
  log?: (message: string) => void;
  /** Called if the emulator exits while running without having been stopped (it crashed or was killed). */
  onUnexpectedExit?: (description: string) => void;
}

export interface RunningEmulator {
  /** host:port, the value for FIRESTORE_EMULATOR_HOST. */
  readonly hostPort: string;
  readonly projectId: string;
  readonly location: EmulatorLocation;
  /** Writes the data to dataDir (no-op without one). */
  exportData(): Promise<void>;
  /** Deletes every document of a project (the emulator's own reset endpoint). */
  clear(projectId?: string): Promise<void>;
  /** Exports (with dataDir), then stops the JVM and waits for it to be gone. */
  stop(): Promise<void>;
}

export class EmulatorNotFoundError extends Error {
  override name = "EmulatorNotFoundError";
}

/** The emulator was found but did not come up (it exited, or did not answer in time). */
export class EmulatorStartError extends Error {
  override name = "EmulatorStartError";
}

function which(command: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, command);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function cloudSdkRoots(env: NodeJS.ProcessEnv): string[] {
  const roots: string[] = [];
  if (env.CLOUDSDK_ROOT_DIR) roots.push(env.CLOUDSDK_ROOT_DIR);
  const gcloud = which("gcloud", env);
  if (gcloud) {
    // <sdk root>/bin/gcloud, usually reached through a symlink such as /usr/bin/gcloud.
    roots.push(dirname(dirname(realpathSync(gcloud))));
    const info = spawnSync(gcloud, ["info", "--format=value(installation.sdk_root)"], {
      encoding: "utf8",
      timeout: 20_000,
      env,
    });
    if (info.status === 0 && info.stdout.trim()) roots.push(info.stdout.trim());
  }
  return roots;
}

function firebaseToolsCacheJar(env: NodeJS.ProcessEnv): string | undefined {
  const dir = join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "firebase", "emulators");
  if (!existsSync(dir)) return undefined;
  const jars = readdirSync(dir)
    .filter((name) => /^cloud-firestore-emulator-v[\d.]+\.jar$/.test(name))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return jars.length > 0 ? join(dir, jars[jars.length - 1]!) : undefined;
}

/** Finds the emulator JAR: environment variable, then the Cloud SDK, then firebase-tools' cache. */
export function locateFirestoreEmulator(env: NodeJS.ProcessEnv = process.env): EmulatorLocation | undefined {
  if (env.FIRESTORE_EMULATOR_JAR) {
    if (!existsSync(env.FIRESTORE_EMULATOR_JAR)) {
      throw new EmulatorNotFoundError(`FIRESTORE_EMULATOR_JAR points to ${env.FIRESTORE_EMULATOR_JAR}, which does not exist`);
    }
    return { jar: env.FIRESTORE_EMULATOR_JAR, source: "FIRESTORE_EMULATOR_JAR" };
  }
  const cached = () => {
    const jar = firebaseToolsCacheJar(env);
    return jar ? ({ jar, source: "firebase-tools cache" } as const) : undefined;
  };
  // The cache is a cheap look; the SDK search may ask gcloud, which takes a second.
  const fromCache = cached();
  for (const root of cloudSdkRoots(env)) {
    const jar = join(root, SDK_RELATIVE_JAR);
    if (existsSync(jar)) return { jar, source: "Google Cloud SDK" };
  }
  return fromCache;
}

/** Last resort where the internet is reachable: let firebase-tools download the emulator. */
function fetchWithFirebaseTools(env: NodeJS.ProcessEnv, log: (message: string) => void): void {
  const firebaseBin = [join(process.cwd(), "node_modules", ".bin", "firebase"), which("firebase", env)].find(
    (candidate) => candidate && existsSync(candidate),
  );
  if (!firebaseBin) return;
  log("Firestore emulator not found; trying `firebase setup:emulators:firestore`...");
  spawnSync(firebaseBin, ["setup:emulators:firestore"], { stdio: "inherit", timeout: 180_000, env });
}

const NOT_FOUND_HELP = `The Cloud Firestore emulator was not found. Install one of:
  - the Google Cloud CLI's emulator: \`apt-get install google-cloud-cli-firestore-emulator\`
    (or \`gcloud components install cloud-firestore-emulator\`), with Java 17+;
  - or let firebase-tools fetch it (needs internet and Java 21): \`npx firebase setup:emulators:firestore\`;
  - or point FIRESTORE_EMULATOR_JAR at a cloud-firestore-emulator JAR;
  - or run an emulator yourself and set FIRESTORE_EMULATOR_HOST=host:port.`;

function checkJava(java: string, env: NodeJS.ProcessEnv): void {
  const probe = spawnSync(java, ["-version"], { encoding: "utf8", env, timeout: 20_000 });
  if (probe.error || probe.status !== 0) {
    throw new EmulatorNotFoundError(`Java was not found (${java}). The Firestore emulator needs Java 17 or newer.`);
  }
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntilAnswering(url: string, child: ChildProcess, output: () => string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new EmulatorStartError(`The Firestore emulator exited during start-up. Its last output:\n${output()}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new EmulatorStartError(`The Firestore emulator did not answer within ${timeoutMs / 1000}s. Its last output:\n${output()}`);
}

export async function startFirestoreEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message: string) => process.stderr.write(message + "\n"));
  const host = options.host ?? "127.0.0.1";
  const { projectId, dataDir } = options;

  let location = locateFirestoreEmulator(env);
  if (!location) {
    fetchWithFirebaseTools(env, log);
    location = locateFirestoreEmulator(env);
  }
  if (!location) throw new EmulatorNotFoundError(NOT_FOUND_HELP);
  const java = env.JAVA ?? "java";
  checkJava(java, env);

  const snapshotDir = dataDir ? join(dataDir, "firestore") : undefined;
  const pidFile = dataDir ? join(dataDir, "firestore-emulator.pid") : undefined;
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  if (pidFile) await settleLeftover(pidFile, ["emulator-watchdog", MAIN_CLASS], "Firestore emulator", log);
  if (!existsSync(WATCHDOG)) throw new EmulatorStartError(`${WATCHDOG} is missing: build first (npm run build).`);

  const port = options.port || (await freePort(host));
  const args = ["-Duser.language=en", "-cp", location.jar, MAIN_CLASS, "--host", host, "--port", String(port)];
  args.push("--project_id", projectId);
  const metadata = snapshotDir && join(snapshotDir, SNAPSHOT_NAME, `${SNAPSHOT_NAME}.overall_export_metadata`);
  if (metadata && existsSync(metadata)) args.push(`--seed_from_export=${metadata}`);

  const baseUrl = `http://${host}:${port}`;
  const plan: ExportPlan | undefined = snapshotDir ? { baseUrl, projectId, snapshotDir } : undefined;
  // Its own process group: Ctrl-C in a terminal must not kill the JVM before we have exported. The
  // watchdog (emulator-watchdog.ts) exports and stops the JVM if this process dies without stop(), even
  // by SIGKILL, so no emulator outlives its owner and no acknowledged write is lost.
  const child = spawn(process.execPath, [WATCHDOG, String(process.pid), plan ? JSON.stringify(plan) : "-", java, ...args], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env,
  });
  const recent = recentOutput(child, 40);
  if (pidFile && child.pid) writeFileSync(pidFile, String(child.pid));
  // Last resort if our process exits without stop(): never leave a JVM behind.
  const killOnExit = () => killGroup(child, "SIGKILL");
  process.on("exit", killOnExit);

  let stopping: Promise<void> | undefined;
  const exited = new Promise<void>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    else child.once("exit", () => resolveExit());
  });
  child.once("exit", (code, signal) => {
    if (stopping) return;
    const how = code === JVM_DIED ? "the emulator's JVM exited" : `its watchdog exited (${signal ?? `code ${code}`})`;
    options.onUnexpectedExit?.(`${how}. Its last output:\n${recent.slice(-10).join("\n")}`);
  });

  try {
    await waitUntilAnswering(baseUrl + "/", child, () => recent.join("\n"));
  } catch (error) {
    stopping = Promise.resolve();
    killGroup(child, "SIGKILL");
    process.off("exit", killOnExit);
    if (pidFile) rmSync(pidFile, { force: true });
    throw error;
  }

  // Exports run in the watchdog (the same code that saves the data if we die), asked over IPC.
  const askWatchdog = ipcRequester<WatchdogRequest>(child, exited, "the emulator exited");
  const exportData = async () => {
    if (plan) await askWatchdog({ command: "export" });
  };

  const timer =
    dataDir && options.exportIntervalMs
      ? setInterval(() => exportData().catch((error: Error) => log(`Periodic export failed: ${error.message}`)), options.exportIntervalMs)
      : undefined;
  timer?.unref();

  const stop = () =>
    (stopping ??= (async () => {
      if (timer) clearInterval(timer);
      if (dataDir) {
        try {
          await exportData();
        } catch (error) {
          log(`Could not export Firestore data on shutdown: ${(error as Error).message}`);
        }
      }
      killGroup(child, "SIGTERM");
      const gone = await Promise.race([exited.then(() => true), sleep(8000).then(() => false)]);
      if (!gone) {
        killGroup(child, "SIGKILL");
        await exited;
      }
      process.off("exit", killOnExit);
      if (pidFile) rmSync(pidFile, { force: true });
    })());

  return {
    hostPort: `${host}:${port}`,
    projectId,
    location,
    exportData,
    async clear(target = projectId) {
      const response = await fetch(`${baseUrl}/emulator/v1/projects/${target}/databases/(default)/documents`, {
        method: "DELETE",
      });
      if (!response.ok) throw new Error(`Clearing the Firestore emulator failed: ${response.status}`);
    },
    stop,
  };
}
