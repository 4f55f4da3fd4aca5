import { inject } from "vitest";

// The Admin SDK reads this when a Firestore instance is created.
process.env.FIRESTORE_EMULATOR_HOST = inject("firestoreEmulatorHost");
