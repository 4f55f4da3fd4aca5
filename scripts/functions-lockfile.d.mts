/** Types for scripts/functions-lockfile.mjs (used by test/deploy-smoke.test.ts). */
export function buildFunctionsLockfile(rootLock: unknown): { packages: Record<string, { version?: string }> } & Record<string, unknown>;
