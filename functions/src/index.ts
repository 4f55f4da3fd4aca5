/**
 * The Cloud Functions entry point: exports the HTTPS function `api` (and, as they arrive, the
 * scheduled jobs). Nothing else belongs here; the app itself is built by createApp.
 */
import { getApps, initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { getStorage } from "firebase-admin/storage";
import { defineSecret } from "firebase-functions/params";
import { onRequest } from "firebase-functions/v2/https";
import { onSchedule } from "firebase-functions/v2/scheduler";
import type { Express } from "express";
import { createApp } from "./app";
import { loadConfig } from "./config";
import { createFileCleanup } from "./files/cleanup";
import { GcsBlobStore } from "./files/gcs-blob-store";
import { systemClock } from "./shared/clock";
import { createLogger } from "./shared/logger";

const jwtSecret = defineSecret("JWT_SECRET");

let app: Express | undefined;

/** Built on the first request: secrets are only readable at run time, not while deploying. */
function buildApp(): Express {
  initializeFirebase();
  const config = loadConfig("production", process.env, { jwtSecret: jwtSecret.value() });
  return createApp({ db: getFirestore(), config, blobs: projectBlobStore() });
}

/** Both functions may share an instance's process: initialize the Admin SDK once. */
function initializeFirebase(): void {
  if (getApps().length === 0) initializeApp();
}

/** Encrypted file bodies: private objects in the project's default bucket (FIREBASE_CONFIG.storageBucket). */
function projectBlobStore(): GcsBlobStore {
  return new GcsBlobStore(() => getStorage().bucket());
}

export const api = onRequest(
  { secrets: [jwtSecret], region: "us-central1", memory: "512MiB", concurrency: 80, timeoutSeconds: 60 },
  (req, res) => {
    app ??= buildApp();
    // Called as .../api/auth/login through a Hosting rewrite the path keeps its /api prefix; called
    // through the function's own URL (.../api) the function name is stripped. Serve both the same.
    if (req.url !== "/api" && !req.url.startsWith("/api/")) req.url = "/api" + req.url;
    app(req, res);
  },
);

/** Expired files and orphans (blob without record, record without blob): see files/cleanup.ts. */
export const cleanupFiles = onSchedule(
  { schedule: "every 1 hours", region: "us-central1", memory: "256MiB", timeoutSeconds: 540, retryCount: 0 },
  async () => {
    initializeFirebase();
    const logger = createLogger({ level: "info" });
    await createFileCleanup({ db: getFirestore(), blobs: projectBlobStore(), clock: systemClock, logger }).run();
  },
);
