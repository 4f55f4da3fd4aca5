import type { DeviceLinkApprovedEvent, DeviceLinkRequestEvent, LinkRequest } from "./generated.js";
import type { ApiClient } from "./rest.js";

/**
 * Linking a new device (docs/API.md "Devices"), both sides, with Web Crypto only (browsers, and Node 20+
 * through globalThis.crypto): the account's identity private key moves from a device that holds it to the
 * new one, encrypted end to end. The server relays the two ephemeral public keys, checks the approver's
 * signature by the account's registered key, and passes on ciphertext it cannot read.
 *
 *   new device   ECDH ephemeral key pair → POST /devices/link-requests
 *   approver     its own ECDH ephemeral pair; ECDH → HKDF-SHA-256 (salt: requestId) → AES-256-GCM key;
 *                encrypts { identity key as PKCS#8 } and signs requestId + "\n" + its ephemeral key
 *                with the identity key → POST /devices/link-requests/:id/approve
 *   new device   checks that signature against the account's registered key, derives the same AES key,
 *                decrypts, and checks the key it got is the registered one
 *
 * The server could swap the new device's ephemeral key for its own on the way to the approver: both
 * devices show `verificationCode` (a fingerprint of the new device's ephemeral key) and the person
 * compares them before approving, as Signal and WhatsApp do with a QR code.
 */

export type LinkCurve = "P-256" | "P-384";

// Web Crypto's key types, named from crypto.subtle itself so they resolve both with the DOM library and
// with Node's own typings (which have no global CryptoKey).
type Subtle = typeof globalThis.crypto.subtle;
/** A Web Crypto CryptoKey. */
export type WebCryptoKey = Awaited<ReturnType<Subtle["deriveKey"]>>;
interface KeyPair {
  publicKey: WebCryptoKey;
  privateKey: WebCryptoKey;
}

/** The account's identity key, as the new device holds it once linked. */
export interface LinkedIdentity {
  /** ECDSA, extractable (so this device can in turn approve another). */
  privateKey: WebCryptoKey;
  curve: LinkCurve;
  /** The account's registered public key (PEM SPKI) that the private key was checked against. */
  publicKeyPem: string;
  /** Whatever else the approver sent along, encrypted with the key (e.g. conversation keys); undefined if nothing. */
  extras?: unknown;
}

/** The new device's side of a link request in progress. */
export interface PendingDeviceLink {
  requestId: string;
  expiresAt: string;
  /** The new device's ephemeral public key, as sent. */
  ephemeralPublicKey: string;
  /** Show it on this device; the approver shows the same one (deviceLinkCode) before approving. */
  verificationCode: string;
  /**
   * Finishes the link from the `device_link_approved` event, or (without one) from
   * GET /devices/link-requests/:requestId. Throws if the request was not approved, if the signature is
   * not by the account's registered key, or if the payload does not decrypt to that key.
   */
  complete(answer?: DeviceLinkApprovedEvent): Promise<LinkedIdentity>;
}

const subtle = () => {
  const api = globalThis.crypto?.subtle;
  if (!api) throw new Error("Web Crypto (crypto.subtle) is unavailable: use a secure context (https or localhost) or Node 20+");
  return api;
};
const utf8 = (text: string) => new TextEncoder().encode(text);
const HKDF_INFO = utf8("e2ee-messenger device link v1");
const PAYLOAD_VERSION = 1;
const TAG_BYTES = 16;
const hashOf = (curve: LinkCurve) => (curve === "P-256" ? "SHA-256" : "SHA-384");
const bitsOf = (curve: LinkCurve) => (curve === "P-256" ? 256 : 384);

function toBase64(bytes: ArrayBuffer | Uint8Array): string {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(new ArrayBuffer(binary.length));
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

function toPem(spki: ArrayBuffer): string {
  const lines = toBase64(spki).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

const fromPem = (pem: string) => fromBase64(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""));

/** Imports a PEM SPKI EC key on whichever of the two curves it is on. */
async function importPublic(pem: string, name: "ECDH" | "ECDSA"): Promise<{ key: WebCryptoKey; curve: LinkCurve }> {
  for (const curve of ["P-256", "P-384"] as const) {
    try {
      const key = await subtle().importKey("spki", fromPem(pem), { name, namedCurve: curve }, true, name === "ECDSA" ? ["verify"] : []);
      return { key, curve };
    } catch {
      // not this curve
    }
  }
  throw new Error("Not a PEM SPKI EC public key on P-256 or P-384");
}

/** The code both devices show: the first 10 bytes of SHA-256 over the new device's ephemeral key (DER), in hex pairs. */
export async function deviceLinkCode(ephemeralPublicKeyPem: string): Promise<string> {
  const digest = new Uint8Array(await subtle().digest("SHA-256", fromPem(ephemeralPublicKeyPem)));
  return [...digest.slice(0, 10)].map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

/** The AES-256-GCM key both sides derive: ECDH, then HKDF-SHA-256 bound to the request. */
async function linkKey(privateKey: WebCryptoKey, theirPem: string, requestId: string): Promise<WebCryptoKey> {
  const { key: theirs, curve } = await importPublic(theirPem, "ECDH");
  const shared = await subtle().deriveBits({ name: "ECDH", public: theirs }, privateKey, bitsOf(curve));
  const hkdf = await subtle().importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return subtle().deriveKey({ name: "HKDF", hash: "SHA-256", salt: utf8(requestId), info: HKDF_INFO }, hkdf, { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/** What the approver signs (CONTRACT.md "Devices"). */
const signedText = (requestId: string, approverEphemeralPem: string) => utf8(`${requestId}\n${approverEphemeralPem}`);

/**
 * The new device asks to be linked. Show `verificationCode`, wait for `device_link_approved` (or poll
 * GET), then call `complete`.
 */
export async function requestDeviceLink(api: ApiClient, { curve = "P-256" }: { curve?: LinkCurve } = {}): Promise<PendingDeviceLink> {
  const ephemeral = (await subtle().generateKey({ name: "ECDH", namedCurve: curve }, false, ["deriveBits"])) as KeyPair;
  const ephemeralPublicKey = toPem(await subtle().exportKey("spki", ephemeral.publicKey));
  const { requestId, expiresAt } = await api.createLinkRequest({ ephemeralPublicKey });

  async function complete(answer?: DeviceLinkApprovedEvent): Promise<LinkedIdentity> {
    let approval: Omit<DeviceLinkApprovedEvent, "requestId"> | null | undefined = answer;
    if (answer && answer.requestId !== requestId) throw new Error("This answer is for another link request");
    if (!approval) {
      const { request } = await api.getLinkRequest(requestId);
      if (!request.approval) throw new Error(`The link request is ${request.status}${request.status === "approved" ? " and its payload was already taken" : ""}`);
      approval = request.approval;
    }
    const { user } = await api.getProfile();
    const registered = await importPublic(user.publicKey, "ECDSA");
    const signature = fromBase64(approval.signature);
    const signedByAccount = await subtle().verify(
      { name: "ECDSA", hash: hashOf(registered.curve) },
      registered.key,
      signature,
      signedText(requestId, approval.ephemeralPublicKey),
    );
    if (!signedByAccount) throw new Error("The approval is not signed by the account's registered identity key");

    const key = await linkKey(ephemeral.privateKey, approval.ephemeralPublicKey, requestId);
    const ciphertext = fromBase64(approval.encryptedPayload);
    const tag = fromBase64(approval.authTag);
    const sealed = new Uint8Array(ciphertext.length + tag.length);
    sealed.set(ciphertext);
    sealed.set(tag, ciphertext.length);
    const plain = await subtle().decrypt({ name: "AES-GCM", iv: fromBase64(approval.iv) }, key, sealed);
    const payload = JSON.parse(new TextDecoder().decode(plain)) as { version: number; curve: LinkCurve; identityPrivateKey: string; extras?: unknown };
    if (payload.version !== PAYLOAD_VERSION || payload.curve !== registered.curve) throw new Error("Unrecognised device link payload");

    const privateKey = await subtle().importKey("pkcs8", fromBase64(payload.identityPrivateKey), { name: "ECDSA", namedCurve: payload.curve }, true, ["sign"]);
    // The key must be the account's registered one: same public point.
    const [mine, theirs] = await Promise.all([subtle().exportKey("jwk", privateKey), subtle().exportKey("jwk", registered.key)]);
    if (mine.x !== theirs.x || mine.y !== theirs.y) throw new Error("The payload is not the account's registered identity key");
    return { privateKey, curve: payload.curve, publicKeyPem: user.publicKey, ...(payload.extras !== undefined ? { extras: payload.extras } : {}) };
  }

  return { requestId, expiresAt, ephemeralPublicKey, verificationCode: await deviceLinkCode(ephemeralPublicKey), complete };
}

/**
 * A device that holds the identity key approves a request (from `device_link_request` or
 * GET /devices/link-requests): only after its person compared `deviceLinkCode(request.ephemeralPublicKey)`
 * with the code the new device shows. `identityPrivateKey` must be extractable (it is sent, encrypted).
 * `extras` (any JSON) travels in the same ciphertext: what else the new device needs, e.g. conversation keys.
 */
export async function approveDeviceLink(
  api: ApiClient,
  request: Pick<DeviceLinkRequestEvent | LinkRequest, "requestId" | "ephemeralPublicKey">,
  identityPrivateKey: WebCryptoKey,
  { extras }: { extras?: unknown } = {},
) {
  const curve = (identityPrivateKey.algorithm as { namedCurve?: string }).namedCurve as LinkCurve;
  if (!identityPrivateKey.extractable) throw new Error("The identity private key is not extractable, so it cannot be sent to a new device");
  const { curve: ephemeralCurve } = await importPublic(request.ephemeralPublicKey, "ECDH");
  const ephemeral = (await subtle().generateKey({ name: "ECDH", namedCurve: ephemeralCurve }, false, ["deriveBits"])) as KeyPair;
  const ephemeralPublicKey = toPem(await subtle().exportKey("spki", ephemeral.publicKey));
  const key = await linkKey(ephemeral.privateKey, request.ephemeralPublicKey, request.requestId);

  const pkcs8 = await subtle().exportKey("pkcs8", identityPrivateKey);
  const plain = utf8(JSON.stringify({ version: PAYLOAD_VERSION, curve, identityPrivateKey: toBase64(pkcs8), ...(extras !== undefined ? { extras } : {}) }));
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv }, key, plain));
  const signature = await subtle().sign({ name: "ECDSA", hash: hashOf(curve) }, identityPrivateKey, signedText(request.requestId, ephemeralPublicKey));
  return api.approveLinkRequest(request.requestId, {
    ephemeralPublicKey,
    encryptedPayload: toBase64(sealed.slice(0, -TAG_BYTES)),
    iv: toBase64(iv),
    authTag: toBase64(sealed.slice(-TAG_BYTES)),
    signature: toBase64(signature),
  });
}
