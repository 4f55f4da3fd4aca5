/**
 * The Cloud Functions entry point: exports the HTTPS function `api` (and, as they arrive, the
 * scheduled jobs). Nothing else belongs here; the app itself is built by createApp.
 */
import { getApps, initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { getStorage } from "firebase-admin/storage";
import { defineSecret } from "firebase-functions/params";
import { onRequest, type HttpsOptions } from "firebase-functions/v2/https";
import { onSchedule } from "firebase-functions/v2/scheduler";
import type { Express } from "express";
import { createApp } from "./app";
import { loadConfig } from "./config";
import { createFileCleanup } from "./files/cleanup";
import { GcsBlobStore } from "./files/gcs-blob-store";
import { MessageExpirySweep } from "./messages/expiry-sweep";
import { MessageRepository } from "./messages/repository";
import { UserEvents } from "./relay/events";
import { createLogSigner } from "./transparency/log-key";
import { TransparencyRepository } from "./transparency/repository";
import { Sequencer } from "./transparency/sequencer";
import { systemClock } from "./shared/clock";
import { createLogger } from "./shared/logger";
import { createTelemetry } from "./telemetry/telemetry";

const jwtSecret = defineSecret("JWT_SECRET");
/** The key-transparency log's signing key (PEM EC P-256): signs tree heads, never leaves the server. */
const transparencyLogKey = defineSecret("TRANSPARENCY_LOG_KEY");

/**
 * Both functions run here, next to Firestore (nam5, firebase.json) and the relay on Cloud Run
 * (docs/DEPLOY.md): every request is a few Firestore round trips.
 */
const REGION = "us-central1";

/**
 * The settings of `api`, chosen together (docs/DEPLOY.md, "Function settings"). The platform reads each
 * request's whole body into memory (req.rawBody, up to its own 32 MB cap, on any route) before the app
 * runs, and an upload may be FILE_MAX_BYTES (25 MiB). So memory is budgeted per concurrent request:
 * about 150 MiB for the process plus 20 x 32 MiB stays under 1 GiB, whatever mix of uploads arrives.
 * One vCPU (the minimum for concurrency above 1) serves 20 Firestore-bound requests well; a login
 * (bcrypt, cost 12) is about 0.3 s of it, so bursts of logins, not memory, make the API scale out.
 */
const apiOptions: HttpsOptions = {
  region: REGION,
  secrets: [jwtSecret, transparencyLogKey],
  memory: "1GiB",
  cpu: 1,
  concurrency: 20,
  // A 25 MiB upload arrives within it over an uplink of about 2 Mbit/s.
  timeoutSeconds: 120,
  // A ceiling on cost, including what a flood of requests can spend: 400 requests in flight.
  maxInstances: 20,
  // Browsers call it directly; the API authenticates every request itself.
  invoker: "public",
};

let app: Express | undefined;

/** Built on the first request: secrets are only readable at run time, not while deploying. */
function buildApp(): Express {
  initializeFirebase();
  const config = loadConfig("production", functionEnv(), { jwtSecret: jwtSecret.value(), transparencyLogKey: transparencyLogKey.value() });
  // Cloud Monitoring and Cloud Trace, exported in the background (docs/DEPLOY.md "Observability"): a
  // response never waits for an export, so what an instance held when it was scaled in may be lost.
  const telemetry = createTelemetry(config, { service: "messenger-api" });
  return createApp({ db: getFirestore(), config, blobs: projectBlobStore(), telemetry });
}

/**
 * The environment without PORT and HOST: they say where the local stack listens, while a function does
 * not listen at all. Here PORT is the platform's, and the Functions emulator sets it to a socket path.
 */
function functionEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.PORT;
  delete env.HOST;
  return env;
}

/** Both functions may share an instance's process: initialize the Admin SDK once. */
function initializeFirebase(): void {
  if (getApps().length === 0) initializeApp();
}

/** Encrypted file bodies: private objects in the project's default bucket (FIREBASE_CONFIG.storageBucket). */
function projectBlobStore(): GcsBlobStore {
  return new GcsBlobStore(() => getStorage().bucket());
}

export const api = onRequest(apiOptions, (req, res) => {
  app ??= buildApp();
  // Called as .../api/auth/login through a Hosting rewrite the path keeps its /api prefix; called
  // through the function's own URL (.../api) the function name is stripped. Serve both the same.
  if (req.url !== "/api" && !req.url.startsWith("/api/")) req.url = "/api" + req.url;
  app(req, res);
});

/** A scheduled job's settings: one instance at a time, no retries (the next run picks up what is left). */
function scheduled(schedule: string, timeoutSeconds: number) {
  return { schedule, region: REGION, memory: "256MiB" as const, timeoutSeconds, retryCount: 0, maxInstances: 1, concurrency: 1 };
}

/** What every scheduled job works with; events reach users' sockets through the relay's feeds. */
function scheduledJobDeps() {
  initializeFirebase();
  const db = getFirestore();
  return { db, events: new UserEvents(db, systemClock), logger: createLogger({ level: "info" }) };
}

/**
 * Expired files (each one's own expiresAt; its uploader told `file_deleted`) and orphans (blob without
 * record, record without blob): see files/cleanup.ts. One sweep
 * at a time (a manual run never overlaps the scheduled one); it needs no JWT secret.
 */
export const cleanupFiles = onSchedule(scheduled("every 1 hours", 540), async () => {
  const { db, events, logger } = scheduledJobDeps();
  // Uploaders hear `file_deleted` through the relay's feeds, wherever their sockets are.
  await createFileCleanup({ db, blobs: projectBlobStore(), events, clock: systemClock, logger }).run();
});

/**
 * Expired disappearing messages that their receiver never acknowledged: deleted, and their senders told
 * (`message_expired`), see messages/expiry-sweep.ts for why a sweep. Every relay instance sweeps every
 * 15 s as well; this one makes sure it happens within a minute when no relay runs. Delivered expired
 * messages are left to the TTL policy on messages.expiresAt. Overlapping runs (a slow one, the
 * relay's) are safe: each expiry is one transaction.
 */
export const expireMessages = onSchedule(scheduled("every 1 minutes", 50), async () => {
  const { db, events, logger } = scheduledJobDeps();
  await new MessageExpirySweep(new MessageRepository(db, events), events, systemClock, logger, { purgeDelivered: false }).run();
});

/**
 * The key-transparency sequencer's fallback: every relay instance merges queued bindings every 0.5 s
 * (transparency/sequencer.ts); this one makes sure they are merged within a minute (the platform's
 * finest schedule) when no relay runs. The sequencer's lease keeps it from merging beside a relay.
 */
export const sequenceTransparencyLog = onSchedule({ ...scheduled("every 1 minutes", 50), secrets: [transparencyLogKey] }, async () => {
  const { db, logger } = scheduledJobDeps();
  const log = new TransparencyRepository(db);
  await new Sequencer(log, createLogSigner(transparencyLogKey.value()), systemClock, logger).run();
});
