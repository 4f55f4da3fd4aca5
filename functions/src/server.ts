/**
 * The local stack (`npm start`): the Firestore emulator, then the same app the Cloud Function serves,
 * on one port with the Socket.IO relay beside it. Data is kept in DATA_DIR across restarts (README,
 * "What survives what"): Ctrl-C or SIGTERM exports it and stops everything; if this process dies
 * without that, the emulator's watchdog exports it before stopping the emulator.
 *
 * Start-up order is chosen so that a start that cannot work fails in seconds and leaves nothing
 * behind: the data folder's lock first (one stack per folder), then the port, then the emulator.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createReadStream, existsSync, renameSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { getStorage } from "firebase-admin/storage";
import { createApp, createServices } from "./app";
import { ConfigError, DEFAULT_LOCAL_PROJECT_ID, loadConfig } from "./config";
import { runCleanupEvery } from "./files/cleanup";
import { GcsBlobStore } from "./files/gcs-blob-store";
import { EmulatorNotFoundError, EmulatorStartError, startFirestoreEmulator, type RunningEmulator } from "./local/firestore-emulator";
import { localJwtSecret, localTransparencyLogKey } from "./local/secret";
import { acquireStackLock, StackLockedError } from "./local/stack-lock";
import { defaultStorageBucket } from "./local/storage-emulator";
import { startStorageEmulatorProcess, type StorageEmulatorProcess } from "./local/storage-emulator-process";
import { DEFAULT_LOCAL_SITE } from "./local/site";
import { attachRelay } from "./relay/relay";
import { createLogger, type Logger } from "./shared/logger";
import { createTelemetry } from "./telemetry/telemetry";

const EXPORT_INTERVAL_MS = 60_000;
/**
 * The relay's event feed rolls to a fresh listener this often here, not every minute as in production:
 * the emulator answers each change to a listened query with the listener's whole result set again, so
 * a feed held open a minute makes every event cost what the minute's events cost (bench/emulator-listeners.mjs).
 */
const EMULATOR_FEED_ROLL_MS = 10_000;
/** A stop that takes longer than this exits anyway (a second Ctrl-C exits at once). */
const SHUTDOWN_DEADLINE_MS = 30_000;
/** How often expired files and orphans are removed (the Cloud Function's schedule is hourly too). */
const FILE_CLEANUP_INTERVAL_MS = 60 * 60 * 1000;

export interface LocalStack {
  server: Server;
  url: string;
  stop(): Promise<void>;
  /** For a stack that cannot go on: gives up the data folder at once (the caller exits; nothing graceful is possible). */
  abandon(): void;
}

/**
 * Earlier versions kept file bodies as files in DATA_DIR/blobs: move them into the Storage emulator once,
 * so an upgrade loses no file (the folder is renamed blobs.moved afterwards, not deleted).
 */
async function moveDiskBlobs(dataDir: string, blobs: GcsBlobStore, logger: Logger): Promise<void> {
  const folder = join(dataDir, "blobs");
  if (!existsSync(folder)) return;
  let moved = 0;
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const key = relative(folder, path).split(sep).join("/");
    await blobs.write(key, createReadStream(path)).catch((error: Error) => {
      // Already there (a move interrupted midway): keep going.
      if (!/exist|412|precondition/i.test(error.message)) throw error;
    });
    moved += 1;
  }
  renameSync(folder, `${folder}.moved`);
  logger.info("moved file bodies from the disk store into the Storage emulator", { files: moved, kept: `${folder}.moved` });
}

/** The port is taken: nothing was started. */
export class PortInUseError extends Error {
  override name = "PortInUseError";
}

async function listen(server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new PortInUseError(`Port ${port} on ${host} is already in use by another program. Stop it, or set PORT to another port.`)
          : error,
      ),
    );
    server.listen(port, host, () => resolveListen());
  });
}

export interface LocalStackOptions {
  /** Called when the stack cannot go on (its emulator exited); main() exits with code 1. */
  onFatal?: (message: string) => void;
}

export async function startLocalStack(env: NodeJS.ProcessEnv = process.env, options: LocalStackOptions = {}): Promise<LocalStack> {
  const dataDir = resolve(env.DATA_DIR ?? resolve(__dirname, "..", "..", ".data"));
  const config = loadConfig("local", env, {
    jwtSecret: env.JWT_SECRET ?? localJwtSecret(dataDir),
    transparencyLogKey: env.TRANSPARENCY_LOG_KEY ?? localTransparencyLogKey(dataDir),
  });
  const logger = createLogger({ level: config.logLevel });
  const lock = acquireStackLock(dataDir);

  // Until the app is built, requests are answered 503 (the port is taken first, to fail fast).
  let handle = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(503, { "Content-Type": "application/json", "Retry-After": "1" });
    res.end(JSON.stringify({ success: false, error: { code: "SERVICE_UNAVAILABLE", message: "Starting up; retry shortly" } }));
  };
  const server = createServer((req, res) => handle(req, res));
  let emulator: RunningEmulator | undefined;
  let storage: StorageEmulatorProcess | undefined;
  let running = false;
  // The emulator dying during start-up fails the start (whatever step it is in).
  let failStart: (error: Error) => void = () => undefined;
  const emulatorDiedDuringStart = new Promise<never>((_, reject) => (failStart = reject));
  emulatorDiedDuringStart.catch(() => undefined);
  let stopping: Promise<void> | undefined;
  let stopParts = async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
    await Promise.all([emulator?.stop(), storage?.stop()]);
  };

  try {
    await listen(server, config.port, config.host);
    if (env.FIRESTORE_EMULATOR_HOST) {
      logger.info("using the Firestore emulator at FIRESTORE_EMULATOR_HOST", { host: env.FIRESTORE_EMULATOR_HOST });
    } else {
      emulator = await startFirestoreEmulator({
        projectId: config.projectId,
        dataDir,
        exportIntervalMs: EXPORT_INTERVAL_MS,
        env,
        log: (message) => logger.info(message),
        onUnexpectedExit: (description) => {
          if (stopping) return;
          if (!running) return failStart(new EmulatorStartError(`The Firestore emulator stopped during start-up: ${description}`));
          options.onFatal?.(
            `The Firestore emulator stopped unexpectedly: ${description}\nThe stack cannot go on without it. The data exported last (every ${EXPORT_INTERVAL_MS / 1000} s) is kept in ${dataDir}; run npm start again.`,
          );
        },
      });
      process.env.FIRESTORE_EMULATOR_HOST = emulator.hostPort;
      logger.info("Firestore emulator started", { host: emulator.hostPort, from: emulator.location.source, dataDir });
    }

    // Encrypted file bodies go through the same Cloud Storage code as in production, to firebase-tools'
    // Storage emulator (local/storage-emulator.ts), kept in DATA_DIR/storage like the Firestore data.
    const onStorageExit = (description: string) => {
      if (stopping) return;
      if (!running) return failStart(new EmulatorStartError(`The Storage emulator stopped during start-up: ${description}`));
      options.onFatal?.(`The Storage emulator stopped unexpectedly: ${description}\nRun npm start again; file bodies are kept in ${dataDir}/storage.`);
    };
    storage = await startStorageEmulatorProcess({ projectId: config.projectId, dataDir, log: (message) => logger.info(message), onUnexpectedExit: onStorageExit });
    process.env.FIREBASE_STORAGE_EMULATOR_HOST = storage.hostPort;
    // firebase-admin copies FIREBASE_STORAGE_EMULATOR_HOST into STORAGE_EMULATOR_HOST only when unset.
    delete process.env.STORAGE_EMULATOR_HOST;
    logger.info("Storage emulator started", { host: storage.hostPort });

    // Nothing here runs on Google Cloud: stop google-auth-library from probing for a metadata server.
    process.env.METADATA_SERVER_DETECTION ??= "none";
    initializeApp({ projectId: config.projectId, storageBucket: defaultStorageBucket(config.projectId) });
    const blobs = new GcsBlobStore(() => getStorage().bucket());
    await moveDiskBlobs(dataDir, blobs, logger);
    // The demo (/) and the API reference (/api/docs): static pages, local stack only.
    // Metrics at /metrics and the dashboard at /status (Prometheus text, read on demand: nothing dials out).
    const telemetry = createTelemetry(config, { service: "messenger-api" });
    const deps = { db: getFirestore(), config, logger, blobs, site: DEFAULT_LOCAL_SITE, telemetry };
    const services = createServices(deps);
    const app = createApp(deps, services);
    const relay = await Promise.race([attachRelay(server, services, { eventFeedRollMs: EMULATOR_FEED_ROLL_MS }), emulatorDiedDuringStart]);
    handle = app; // from here on /api/health answers 200: the stack is up
    const fileCleanup = runCleanupEvery(services.fileCleanup, FILE_CLEANUP_INTERVAL_MS, logger);
    const stopEmulatorAndServer = stopParts;
    stopParts = async () => {
      await fileCleanup.stop();
      await relay.close();
      await services.passwords.close();
      await telemetry.shutdown();
      await stopEmulatorAndServer();
    };
  } catch (error) {
    stopping = Promise.resolve();
    await stopParts().catch(() => undefined);
    lock.release();
    throw error;
  }

  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;
  lock.describe(url);
  running = true;

  const stop = () =>
    (stopping ??= (async () => {
      try {
        await stopParts();
      } finally {
        lock.release();
      }
    })());

  const abandon = () => {
    stopping ??= Promise.resolve();
    server.closeAllConnections();
    lock.release();
  };

  return { server, url, stop, abandon };
}

async function main(): Promise<void> {
  const stack = await startLocalStack(process.env, {
    onFatal: (message) => {
      process.stderr.write(`\n${message}\n`);
      stack.abandon();
      process.exit(1);
    },
  });
  process.stdout.write(
    `\nE2EE messenger backend running\n` +
      `  API:       ${stack.url}/api   (VITE_API_BASE_URL)\n` +
      `  Realtime:  ${stack.url.replace("http", "ws")}   (VITE_WS_URL)\n` +
      `  Demo:      ${stack.url}/   (two users in one page, Web Crypto end to end)\n` +
      `  Reference: ${stack.url}/api/docs   (OpenAPI: ${stack.url}/api/openapi.json)\n` +
      `  Status:    ${stack.url}/status   (live charts; Prometheus text at ${stack.url}/metrics)\n` +
      `  Project:   ${process.env.FIREBASE_PROJECT_ID ?? DEFAULT_LOCAL_PROJECT_ID} on the Firestore emulator\n` +
      `Press Ctrl-C to stop (data is kept).\n\n`,
  );
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) {
      process.stdout.write(`\n${signal} again: exiting now (the emulator's watchdog saves the data).\n`);
      process.exit(1);
    }
    shuttingDown = true;
    process.stdout.write(`\n${signal} received: saving data and stopping...\n`);
    // Never hang on the way out: past the deadline, exit and let the watchdog save and stop the emulator.
    setTimeout(() => {
      process.stderr.write(`Stopping took over ${SHUTDOWN_DEADLINE_MS / 1000} s: exiting (the emulator's watchdog saves the data).\n`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    stack.stop().then(
      () => process.exit(0),
      (error: Error) => {
        process.stderr.write(`Shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

if (require.main === module) {
  main().catch((error: Error) => {
    const known =
      error instanceof ConfigError ||
      error instanceof EmulatorNotFoundError ||
      error instanceof EmulatorStartError ||
      error instanceof StackLockedError ||
      error instanceof PortInUseError;
    process.stderr.write(`\n${known ? error.message : error.stack}\n`);
    process.exit(1);
  });
}
