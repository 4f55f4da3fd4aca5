// The built backend (functions/lib), gathered for the benchmarks. Run `npm run build` first.
const { createApp, createServices } = require("../functions/lib/app.js");
const { loadConfig } = require("../functions/lib/config.js");
const { startFirestoreEmulator } = require("../functions/lib/local/firestore-emulator.js");
const { newId } = require("../functions/lib/shared/ids.js");
const { attachRelay } = require("../functions/lib/relay/relay.js");
const { randomBytes } = require("node:crypto");


/** The value at percentile p (0-100) of an ascending array; undefined when it is empty. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** A POST /messages/send body (and send_message payload) to receiverId, with fresh random fields. */
function messagePayload(receiverId) {
  return {
    receiverId,
    encryptedContent: randomBytes(256).toString("base64"),
    iv: randomBytes(12).toString("base64"),
    authTag: randomBytes(16).toString("base64"),
    nonce: randomBytes(16).toString("base64"),
    timestamp: new Date().toISOString(),
    signature: randomBytes(64).toString("base64"),
    messageType: "text",
  };
}

/**
 * The Firestore emulator to use: the one at FIRESTORE_EMULATOR_HOST if set, else a new one in projectId.
 * Returns its host:port and stop() (a no-op for an emulator this did not start). Sets no environment.
 */
async function useEmulator(projectId) {
  const existing = process.env.FIRESTORE_EMULATOR_HOST;
  if (existing) return { hostPort: existing, stop: async () => undefined };
  const emulator = await startFirestoreEmulator({ projectId, log: () => undefined });
  return { hostPort: emulator.hostPort, stop: () => emulator.stop() };
}

module.exports = { createApp, createServices, loadConfig, startFirestoreEmulator, newId, attachRelay, percentile, messagePayload, useEmulator };
