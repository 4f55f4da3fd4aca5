import type { Firestore } from "firebase-admin/firestore";
import { z } from "zod";
import { AppError, toEnvelope } from "./errors";
import { withDeadline } from "./http";
import { operationOf, type OperationGroup } from "./operations";
import { errorEnvelopeSchema, isoTime, succeeded } from "./responses";

const FIRESTORE_TIMEOUT_MS = 3000;

/** GET /health's answer; 503 adds the error envelope to the same fields. */
const healthResponseSchema = succeeded({
  status: z.literal("ok"),
  firestore: z.literal("ok"),
  time: isoTime(),
});

/** GET /health's 503: the envelope plus the same fields. */
const healthUnavailableSchema = errorEnvelopeSchema.extend({
  status: z.literal("degraded"),
  firestore: z.literal("unavailable"),
  time: isoTime(),
});

interface HealthDeps {
  db: Firestore;
}

const operation = operationOf<HealthDeps>();

/** GET /health: 200 when Firestore answers, 503 when it does not. Public, says nothing secret. */
export const healthOperations: OperationGroup<HealthDeps> = {
  prefix: "",
  tag: "Health",
  operations: [
    operation({
      operationId: "getHealth",
      method: "get",
      path: "/health",
      summary: "Health check",
      description: "200 when Firestore answers; 503 SERVICE_UNAVAILABLE (with `firestore: \"unavailable\"`) when it does not.",
      auth: "public",
      success: { status: 200, description: "The API and Firestore are up", schema: healthResponseSchema },
      errors: ["SERVICE_UNAVAILABLE"],
      errorBodies: { 503: healthUnavailableSchema },
      handle: async ({ res }, { db }) => {
        const firestore = (await firestoreAnswers(db)) ? "ok" : "unavailable";
        const body = { status: firestore === "ok" ? "ok" : "degraded", firestore, time: new Date().toISOString() };
        if (firestore === "ok") return body;
        const error = new AppError("SERVICE_UNAVAILABLE", "Firestore is not answering");
        res.status(error.status).json({ ...toEnvelope(error), ...body });
      },
    }),
  ],
};

async function firestoreAnswers(db: Firestore): Promise<boolean> {
  try {
    await withDeadline(db.collection("health").limit(1).get(), FIRESTORE_TIMEOUT_MS);
    return true;
  } catch {
    return false;
  }
}
