import { createPublicKey, type KeyObject } from "node:crypto";

/** The curves the frontend's Web Crypto keys use, by their Node/OpenSSL names. */
const CURVES = { prime256v1: "P-256", secp384r1: "P-384" } as const;
export type Curve = (typeof CURVES)[keyof typeof CURVES];

export const MAX_PUBLIC_KEY_PEM_LENGTH = 1024;

// SPKI only ("PUBLIC KEY"): not certificates, not the SEC1 "EC PUBLIC KEY" armor, nothing around it.
const SPKI_PEM = /^-----BEGIN PUBLIC KEY-----\r?\n(?:[A-Za-z0-9+/=]+\r?\n)+-----END PUBLIC KEY-----\r?\n?$/;

export interface EcPublicKey {
  curve: Curve;
  key: KeyObject;
}

/** Returns the key if `pem` is a PEM SPKI EC public key on P-256 or P-384, otherwise undefined. */
export function parseEcPublicKeyPem(pem: string): EcPublicKey | undefined {
  if (pem.length > MAX_PUBLIC_KEY_PEM_LENGTH || !SPKI_PEM.test(pem)) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch {
    return undefined;
  }
  if (key.asymmetricKeyType !== "ec") return undefined;
  const namedCurve = key.asymmetricKeyDetails?.namedCurve as keyof typeof CURVES | undefined;
  const curve = namedCurve ? CURVES[namedCurve] : undefined;
  return curve ? { curve, key } : undefined;
}
