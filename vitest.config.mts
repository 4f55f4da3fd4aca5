import { configDefaults, defineConfig } from "vitest/config";

/**
 * Two projects. `unit` (test/unit/) runs the pure decisions with no emulator: `npm run test:unit`
 * answers in about a second. `integration` is everything else, against the Firestore and Storage
 * emulators its global setup starts. `npm test` runs both.
 */
export default defineConfig({
  test: {
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
    projects: [
      {
        extends: true,
        // Pure functions: one worker, modules loaded once (firebase-admin's Timestamp dominates the time);
        // run first, so a broken rule shows before the emulator suite.
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], isolate: false, maxWorkers: 1, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: "integration",
          sequence: { groupOrder: 1 },
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/unit/**"],
          globalSetup: ["test/support/global-setup.ts"],
          setupFiles: ["test/support/worker-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
