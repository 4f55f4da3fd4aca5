import { verify, type KeyObject } from "node:crypto";
import type { Curve } from "../shared/keys";
import { BASE64_TEXT } from "../shared/validation";

/**
 * ECDSA as the browser's Web Crypto does it: SHA-256 for P-256 keys, SHA-384 for P-384, over the
 * UTF-8 bytes of the signed text exactly as sent. Web Crypto produces IEEE P1363 signatures (r || s);
 * DER is accepted as well.
 */
const HASH: Record<Curve, string> = { "P-256": "sha256", "P-384": "sha384" };
const P1363_LENGTH: Record<Curve, number> = { "P-256": 64, "P-384": 96 };
const MAX_SIGNATURE_BYTES = 160;

/** Standard or URL-safe base64, padding optional; undefined when it is not base64 at all. */
function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64_TEXT.test(text)) return undefined;
  return Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

export function verifySignature(key: KeyObject, curve: Curve, signedText: string, signatureBase64: string): boolean {
  const signature = decodeBase64(signatureBase64);
  if (!signature || signature.length === 0 || signature.length > MAX_SIGNATURE_BYTES) return false;
  const data = Buffer.from(signedText, "utf8");
  const encoding = signature.length === P1363_LENGTH[curve] ? "ieee-p1363" : "der";
  try {
    return verify(HASH[curve], data, { key, dsaEncoding: encoding }, signature);
  } catch {
    return false; // malformed DER and the like
  }
}
