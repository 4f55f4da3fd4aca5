/**
 * The Cloud Functions entry point: exports the HTTPS function `api` (and, as they arrive, the
 * scheduled jobs). Nothing else belongs here; the app itself is built by createApp.
 */
import { initializeApp } from "firebase-admin/app";
import { getFirestore } from "firebase-admin/firestore";
import { defineSecret } from "firebase-functions/params";
import { onRequest } from "firebase-functions/v2/https";
import type { Express } from "express";
import { createApp } from "./app";
import { loadConfig } from "./config";

const jwtSecret = defineSecret("JWT_SECRET");

let app: Express | undefined;

/** Built on the first request: secrets are only readable at run time, not while deploying. */
function buildApp(): Express {
  initializeApp();
  const config = loadConfig("production", process.env, { jwtSecret: jwtSecret.value() });
  return createApp({ db: getFirestore(), config });
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
