import { createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";

/**
 * The log key: ECDSA P-256 that signs tree heads. It never leaves the server and never changes for a
 * deployment (clients pin its public half). Production reads it from the secret TRANSPARENCY_LOG_KEY
 * (Secret Manager, config.ts); the local stack generates one once into DATA_DIR (local/secret.ts).
 */
export interface LogSigner {
  /** PEM SPKI: what GET /transparency/key answers and clients pin. */
  readonly publicKeyPem: string;
  /** ECDSA P-256 / SHA-256 over `data`, IEEE P1363 (r || s), as Web Crypto verifies it. */
  sign(data: Buffer): Buffer;
}

export class LogKeyError extends Error {
  override name = "LogKeyError";
}

export function createLogSigner(privateKeyPem: string): LogSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch {
    throw new LogKeyError("TRANSPARENCY_LOG_KEY is not a PEM private key");
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new LogKeyError("TRANSPARENCY_LOG_KEY must be an EC P-256 private key");
  }
  const publicKeyPem = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
  return {
    publicKeyPem,
    sign: (data) => sign("sha256", data, { key, dsaEncoding: "ieee-p1363" }),
  };
}
