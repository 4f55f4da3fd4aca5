import type { TestProject } from "vitest/node";
import { startFirestoreEmulator, type RunningEmulator } from "../../functions/src/local/firestore-emulator";
import { startStorageEmulator, type RunningStorageEmulator } from "../../functions/src/local/storage-emulator";

/**
 * One Firestore emulator for the whole run, on a free port. Each test file then works in a project of
 * its own (see app.ts), so files never see each other's data and may run in parallel.
 * An emulator that is already running can be used instead: set FIRESTORE_EMULATOR_HOST.
 *
 * Beside it, one Cloud Storage emulator (firebase-tools' own, run in this process: it is Node code and
 * needs no Java). It is always ours, not one from FIREBASE_STORAGE_EMULATOR_HOST: `firebase emulators:start`
 * ignores ifGenerationMatch on uploads, which GcsBlobStore relies on. Files keep apart by bucket or key.
 */
let firestore: RunningEmulator | undefined;
let storage: RunningStorageEmulator | undefined;

export default async function setup(project: TestProject) {
  let firestoreHost = process.env.FIRESTORE_EMULATOR_HOST;
  if (!firestoreHost) {
    firestore = await startFirestoreEmulator({ projectId: "demo-test", log: (message) => console.log(message) });
    firestoreHost = firestore.hostPort;
  }
  project.provide("firestoreEmulatorHost", firestoreHost);

  storage = await startStorageEmulator({ projectId: "demo-test", log: (message) => console.log(message) });
  project.provide("storageEmulatorHost", storage.hostPort);

  return async () => {
    await Promise.all([firestore?.stop(), storage?.stop()]);
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    firestoreEmulatorHost: string;
    storageEmulatorHost: string;
  }
}
