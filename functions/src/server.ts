/**
 * The local stack (`npm start`): the Firestore emulator, then the same app the Cloud Function serves,
 * on one port with the Socket.IO relay beside it. Data is kept in DATA_DIR
 * across restarts; Ctrl-C or SIGTERM exports it and stops everything.
 */
import { createServer, type Server } from "node:http";
import { join, resolve } from "node:path";
import { initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { createApp, createServices } from "./app";
import { ConfigError, DEFAULT_LOCAL_PROJECT_ID, loadConfig } from "./config";
import { runCleanupEvery } from "./files/cleanup";
import { LocalBlobStore } from "./files/local-blob-store";
import { EmulatorNotFoundError, startFirestoreEmulator, type RunningEmulator } from "./local/firestore-emulator";
import { localJwtSecret } from "./local/secret";
import { DEFAULT_LOCAL_SITE } from "./local/site";
import { attachRelay } from "./relay/relay";
import { createLogger } from "./shared/logger";

const EXPORT_INTERVAL_MS = 60_000;
/** How often expired files and orphans are removed (the Cloud Function's schedule is hourly too). */
const FILE_CLEANUP_INTERVAL_MS = 60 * 60 * 1000;

export interface LocalStack {
  server: Server;
  url: string;
  stop(): Promise<void>;
}

export async function startLocalStack(env: NodeJS.ProcessEnv = process.env): Promise<LocalStack> {
  const dataDir = resolve(env.DATA_DIR ?? resolve(__dirname, "..", "..", ".data"));
  const config = loadConfig("local", env, { jwtSecret: env.JWT_SECRET ?? localJwtSecret(dataDir) });
  const logger = createLogger({ level: config.logLevel });

  let emulator: RunningEmulator | undefined;
  if (env.FIRESTORE_EMULATOR_HOST) {
    logger.info("using the Firestore emulator at FIRESTORE_EMULATOR_HOST", { host: env.FIRESTORE_EMULATOR_HOST });
  } else {
    emulator = await startFirestoreEmulator({
      projectId: config.projectId,
      dataDir,
      exportIntervalMs: EXPORT_INTERVAL_MS,
      env,
      log: (message) => logger.info(message),
    });
    process.env.FIRESTORE_EMULATOR_HOST = emulator.hostPort;
    logger.info("Firestore emulator started", { host: emulator.hostPort, from: emulator.location.source, dataDir });
  }

  // Nothing here runs on Google Cloud: stop google-auth-library from probing for a metadata server.
  process.env.METADATA_SERVER_DETECTION ??= "none";
  initializeApp({ projectId: config.projectId });
  // Encrypted file bodies: a folder beside the Firestore export, never served (only GET /api/files/:id reads it).
  const blobs = new LocalBlobStore(join(dataDir, "blobs"));
  // The demo (/) and the API reference (/api/docs): static pages, local stack only.
  const deps = { db: getFirestore(), config, logger, blobs, site: DEFAULT_LOCAL_SITE };
  const services = createServices(deps);
  const server = createServer(createApp(deps, services));
  const relay = await attachRelay(server, services);
  const fileCleanup = runCleanupEvery(services.fileCleanup, FILE_CLEANUP_INTERVAL_MS, logger);

  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => resolveListen());
    });
  } catch (error) {
    await fileCleanup.stop();
    await relay.close();
    await emulator?.stop();
    throw error;
  }
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await fileCleanup.stop();
      await relay.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await emulator?.stop();
    })());

  return { server, url, stop };
}

async function main(): Promise<void> {
  const stack = await startLocalStack();
  process.stdout.write(
    `\nE2EE messenger backend running\n` +
      `  API:       ${stack.url}/api   (VITE_API_BASE_URL)\n` +
      `  Realtime:  ${stack.url.replace("http", "ws")}   (VITE_WS_URL)\n` +
      `  Demo:      ${stack.url}/   (two users in one page, Web Crypto end to end)\n` +
      `  Reference: ${stack.url}/api/docs   (OpenAPI: ${stack.url}/api/openapi.json)\n` +
      `  Project:   ${process.env.FIREBASE_PROJECT_ID ?? DEFAULT_LOCAL_PROJECT_ID} on the Firestore emulator\n` +
      `Press Ctrl-C to stop (data is kept).\n\n`,
  );
  const shutdown = (signal: string) => {
    process.stdout.write(`\n${signal} received: saving data and stopping...\n`);
    stack.stop().then(
      () => process.exit(0),
      (error: Error) => {
        process.stderr.write(`Shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
}

if (require.main === module) {
  main().catch((error: Error) => {
    const known = error instanceof ConfigError || error instanceof EmulatorNotFoundError;
    process.stderr.write(`\n${known ? error.message : error.stack}\n`);
    process.exit(1);
  });
}
