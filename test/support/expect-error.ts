import { resolve } from "node:path";
import { expect } from "vitest";

/** A server path in an answer would show where the server runs from. */
const REPOSITORY_ROOT = resolve(__dirname, "..", "..");

/**
 * Asserts the contract's error envelope (`{ success: false, error: { code, message, details? } }`) with
 * nothing else at the top level and nothing a client should not see (no stack, no server paths), then
 * the status, code and offending field where given. One helper for every test, so every refusal is
 * held to the same envelope.
 */
export function expectError(
  response: { status: number; body: any; text?: string },
  status?: number,
  code?: string,
  field?: string,
): void {
  const shown = `${response.status} ${response.text ?? JSON.stringify(response.body)?.slice(0, 300)}`;
  if (status !== undefined) expect(response.status, shown).toBe(status);
  expect(response.body, shown).toMatchObject({ success: false, error: { code: expect.any(String), message: expect.any(String) } });
  expect(Object.keys(response.body).sort(), shown).toEqual(["error", "success"]);
  expect(JSON.stringify(response.body), shown).not.toMatch(/stack|at \S+ \(|node_modules/i);
  expect(JSON.stringify(response.body), shown).not.toContain(REPOSITORY_ROOT);
  if (code !== undefined) expect(response.body.error.code, shown).toBe(code);
  if (field !== undefined) expect(response.body.error.details?.field, shown).toBe(field);
}
