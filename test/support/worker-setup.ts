import { inject } from "vitest";

// The Admin SDK reads this when a Firestore instance is created.
process.env.FIRESTORE_EMULATOR_HOST = inject("firestoreEmulatorHost");

// The Admin SDK reads this when a Storage instance is first created, and copies it (as http://host:port)
// into STORAGE_EMULATOR_HOST only if that is unset: one left in the shell would win, so it goes.
process.env.FIREBASE_STORAGE_EMULATOR_HOST = inject("storageEmulatorHost");
delete process.env.STORAGE_EMULATOR_HOST;

// There is no Google metadata server here: tell google-auth-library not to go looking for one.
process.env.METADATA_SERVER_DETECTION ??= "none";
