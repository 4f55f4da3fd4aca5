// The built backend (functions/lib), gathered for the benchmarks. Run `npm run build` first.
const { createApp, createServices } = require("../functions/lib/app.js");
const { loadConfig } = require("../functions/lib/config.js");
const { createTelemetry } = require("../functions/lib/telemetry/telemetry.js");
const { startFirestoreEmulator } = require("../functions/lib/local/firestore-emulator.js");
const { newId } = require("../functions/lib/shared/ids.js");
const { attachRelay } = require("../functions/lib/relay/relay.js");
const { storedUserOf } = require("../functions/lib/users/repository.js");
const { randomBytes } = require("node:crypto");
const { readdirSync, readFileSync } = require("node:fs");


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

/**
 * CPU ms the emulator's JVM (listening on hostPort) has used so far, read from /proc (Linux): where the
 * database's share of a workload shows. Undefined when the process is not found.
 */
function emulatorCpuMs(hostPort) {
  const port = hostPort.split(":").pop();
  emulatorCpuMs.pid ??= readdirSync("/proc").find((pid) => {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      // The JVM itself, not a wrapper that carries the same arguments.
      return /java$/.test(args[0]) && args.some((arg) => arg.includes("CloudFirestore")) && args[args.indexOf("--port") + 1] === port;
    } catch {
      return false;
    }
  });
  try {
    // utime and stime, in clock ticks (100 per second on Linux), after the parenthesised command name.
    const fields = readFileSync(`/proc/${emulatorCpuMs.pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/**
 * Waits until the emulator is nearly idle (under a quarter of a core over half a second), at most 15 s,
 * so that work it still owes one measurement is not counted against the next.
 */
async function settleEmulator(hostPort) {
  const deadline = Date.now() + 15_000;
  for (let last = emulatorCpuMs(hostPort); Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = emulatorCpuMs(hostPort);
    if (now === undefined || now - last < 125) return;
    last = now;
  }
}

module.exports = {
  createApp,
  createServices,
  loadConfig,
  createTelemetry,
  startFirestoreEmulator,
  newId,
  attachRelay,
  storedUserOf,
  percentile,
  messagePayload,
  useEmulator,
  emulatorCpuMs,
  settleEmulator,
};
