import { Router } from "express";
import type { Firestore } from "firebase-admin/firestore";
import { AppError, toEnvelope } from "./errors";

const FIRESTORE_TIMEOUT_MS = 3000;

/** GET /health: 200 when Firestore answers, 503 when it does not. Public, says nothing secret. */
export function healthRoutes(db: Firestore): Router {
  const router = Router();
  router.get("/health", async (_req, res) => {
    let firestore: "ok" | "unavailable" = "ok";
    try {
      await Promise.race([
        db.collection("health").limit(1).get(),
        new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), FIRESTORE_TIMEOUT_MS).unref()),
      ]);
    } catch {
      firestore = "unavailable";
    }
    const body = { status: firestore === "ok" ? "ok" : "degraded", firestore, time: new Date().toISOString() };
    if (firestore === "ok") {
      res.json({ success: true, ...body });
    } else {
      const error = new AppError("SERVICE_UNAVAILABLE", "Firestore is not answering");
      res.status(error.status).json({ ...toEnvelope(error), ...body });
    }
  });
  return router;
}
