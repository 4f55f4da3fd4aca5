import { inject } from "vitest";

// The Admin SDK reads this when a Firestore instance is created.
process.env.FIRESTORE_EMULATOR_HOST = inject("firestoreEmulatorHost");

// There is no Google metadata server here: tell google-auth-library not to go looking for one.
process.env.METADATA_SERVER_DETECTION ??= "none";
