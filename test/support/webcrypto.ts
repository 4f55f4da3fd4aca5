import { sign as nodeSign, createPrivateKey, type webcrypto } from "node:crypto";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/**
 * What the browser does, with the same Web Crypto API (globalThis.crypto.subtle): ECDSA identity keys,
 * ECDH ephemeral keys, PEM SPKI export, P1363 signatures over the PEM's UTF-8 bytes, AES-256-GCM.
 */
const subtle = globalThis.crypto.subtle;
export type Curve = "P-256" | "P-384";
export const hashOf = (curve: Curve) => (curve === "P-256" ? "SHA-256" : "SHA-384");

function toPem(spki: ArrayBuffer): string {
  const base64 = Buffer.from(spki).toString("base64");
  const lines = base64.match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

export interface Identity {
  curve: Curve;
  keys: CryptoKeyPair;
  publicKeyPem: string;
}

export async function newIdentity(curve: Curve = "P-256"): Promise<Identity> {
  const keys = (await subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"])) as CryptoKeyPair;
  return { curve, keys, publicKeyPem: toPem(await subtle.exportKey("spki", keys.publicKey)) };
}

export interface Ephemeral {
  keys: CryptoKeyPair;
  publicKeyPem: string;
}

export async function newEphemeral(curve: Curve = "P-256"): Promise<Ephemeral> {
  const keys = (await subtle.generateKey({ name: "ECDH", namedCurve: curve }, true, ["deriveKey"])) as CryptoKeyPair;
  return { keys, publicKeyPem: toPem(await subtle.exportKey("spki", keys.publicKey)) };
}

/** Web Crypto's ECDSA signature (IEEE P1363, r || s) over the UTF-8 bytes of `text`, base64. */
export async function signP1363(identity: Identity, text: string): Promise<string> {
  const signature = await subtle.sign({ name: "ECDSA", hash: hashOf(identity.curve) }, identity.keys.privateKey, new TextEncoder().encode(text));
  return Buffer.from(signature).toString("base64");
}

/** The same signature DER-encoded (what OpenSSL and many libraries produce). */
export async function signDer(identity: Identity, text: string): Promise<string> {
  const pkcs8 = Buffer.from(await subtle.exportKey("pkcs8", identity.keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  return nodeSign(hashOf(identity.curve).replace("-", "").toLowerCase(), Buffer.from(text, "utf8"), { key, dsaEncoding: "der" }).toString("base64");
}

function fromPem(pem: string): ArrayBuffer {
  const base64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const bytes = Buffer.from(base64, "base64");
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** ECDH(my ephemeral private, their ephemeral public) → AES-256-GCM key, as the frontend derives it. */
export async function deriveSessionKey(mine: Ephemeral, theirPem: string, curve: Curve = "P-256"): Promise<CryptoKey> {
  const theirs = await subtle.importKey("spki", fromPem(theirPem), { name: "ECDH", namedCurve: curve }, false, []);
  return subtle.deriveKey({ name: "ECDH", public: theirs }, mine.keys.privateKey, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** AES-256-GCM with the tag split off, as the guide's fields carry it. */
export async function encrypt(key: CryptoKey, plaintext: string) {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const sealed = Buffer.from(await subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(plaintext)));
  return {
    encryptedContent: sealed.subarray(0, sealed.length - 16).toString("base64"),
    authTag: sealed.subarray(sealed.length - 16).toString("base64"),
    iv: Buffer.from(iv).toString("base64"),
  };
}

export async function decrypt(key: CryptoKey, message: { encryptedContent: string; authTag: string; iv: string }): Promise<string> {
  const sealed = Buffer.concat([Buffer.from(message.encryptedContent, "base64"), Buffer.from(message.authTag, "base64")]);
  const plain = await subtle.decrypt({ name: "AES-GCM", iv: Buffer.from(message.iv, "base64") }, key, sealed);
  return new TextDecoder().decode(plain);
}
