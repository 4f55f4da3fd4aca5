import bcrypt from "bcryptjs";

/** bcrypt with a configurable cost; inputs over 72 bytes never get here (see auth/schema.ts). */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Burns the same time as a real check, so an unknown email is not told apart by latency. */
  verifyAgainstDummy(password: string): Promise<false>;
}

export function createPasswordHasher(cost: number): PasswordHasher {
  let dummyHash: Promise<string> | undefined;
  return {
    hash: (password) => bcrypt.hash(password, cost),
    verify: (password, hash) => bcrypt.compare(password, hash),
    async verifyAgainstDummy(password) {
      dummyHash ??= bcrypt.hash("dummy password for timing", cost);
      await bcrypt.compare(password, await dummyHash);
      return false;
    },
  };
}
