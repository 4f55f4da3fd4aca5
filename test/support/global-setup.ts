import type { TestProject } from "vitest/node";
import { startFirestoreEmulator, type RunningEmulator } from "../../functions/src/local/firestore-emulator";

/**
 * One Firestore emulator for the whole run, on a free port. Each test file then works in a project of
 * its own (see app.ts), so files never see each other's data and may run in parallel.
 * An emulator that is already running can be used instead: set FIRESTORE_EMULATOR_HOST.
 */
let emulator: RunningEmulator | undefined;

export default async function setup(project: TestProject) {
  let hostPort = process.env.FIRESTORE_EMULATOR_HOST;
  if (!hostPort) {
    emulator = await startFirestoreEmulator({ projectId: "demo-test", log: (message) => console.log(message) });
    hostPort = emulator.hostPort;
  }
  project.provide("firestoreEmulatorHost", hostPort);
  return async () => {
    await emulator?.stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    firestoreEmulatorHost: string;
  }
}
