// What an end-to-end-encrypted client does with Web Crypto, and nothing else: the server only ever sees
// public keys, signatures and ciphertext. Mirrors test/support/webcrypto.ts (the same steps in Node).
//
//   identity key   ECDSA P-256, public half registered as PEM SPKI; signs ephemeral keys, messages, files
//   ephemeral key  ECDH P-256, one per key exchange, signed by the identity key (IEEE P1363, as Web Crypto signs)
//   session key    ECDH(my ephemeral private, their ephemeral public) → AES-256-GCM
//   message        AES-256-GCM, 12-byte random IV, the 16-byte tag sent apart as `authTag`

const subtle = globalThis.crypto?.subtle;
const CURVE = "P-256";
const SIGNING = { name: "ECDSA", hash: "SHA-256" };
const TAG_BYTES = 16;

export function assertWebCrypto() {
  if (!subtle) throw new Error("Web Crypto is unavailable: open the demo from http://localhost (a secure context).");
}

export const toBase64 = (bytes) => {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
};

export const fromBase64 = (text) => Uint8Array.from(atob(text), (char) => char.charCodeAt(0));

const utf8 = (text) => new TextEncoder().encode(text);

function toPem(spki) {
  const lines = toBase64(spki).match(/.{1,64}/g).join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

const fromPem = (pem) => fromBase64(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""));

/** The first 8 bytes of SHA-256, as hex pairs: short enough to compare by eye. */
export async function fingerprint(bytes) {
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return [...digest.slice(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

// Extractable only so that a second device can be linked: the key then travels to it encrypted end to
// end (the typed client's approveDeviceLink), never in the clear.
export async function newIdentity() {
  const keys = await subtle.generateKey({ name: "ECDSA", namedCurve: CURVE }, true, ["sign", "verify"]);
  const spki = await subtle.exportKey("spki", keys.publicKey);
  return { keys, publicKeyPem: toPem(spki), fingerprint: await fingerprint(spki) };
}

/** The identity a linked device received (the typed client's LinkedIdentity), in the shape newIdentity returns. */
export async function linkedIdentity(linked) {
  return { keys: { privateKey: linked.privateKey }, publicKeyPem: linked.publicKeyPem, fingerprint: await fingerprint(fromPem(linked.publicKeyPem)) };
}

export async function newEphemeral() {
  const keys = await subtle.generateKey({ name: "ECDH", namedCurve: CURVE }, false, ["deriveKey"]);
  return { keys, publicKeyPem: toPem(await subtle.exportKey("spki", keys.publicKey)) };
}

/** ECDSA over `data` (a string is signed as its UTF-8 bytes), base64 of r || s. */
export async function sign(identity, data) {
  const bytes = typeof data === "string" ? utf8(data) : data;
  return toBase64(await subtle.sign(SIGNING, identity.keys.privateKey, bytes));
}

/** Verifies a signature by someone's registered identity key (their `publicKey` PEM). */
export async function verify(publicKeyPem, signature, data) {
  const key = await subtle.importKey("spki", fromPem(publicKeyPem), { name: "ECDSA", namedCurve: CURVE }, false, ["verify"]);
  const bytes = typeof data === "string" ? utf8(data) : data;
  return subtle.verify(SIGNING, key, fromBase64(signature), bytes);
}

/**
 * The session key both sides derive. Extractable only so that the demo can show its fingerprint and
 * prove both sides hold the same key; a real client would keep it non-extractable.
 */
export async function deriveSessionKey(ephemeral, theirPem) {
  const theirs = await subtle.importKey("spki", fromPem(theirPem), { name: "ECDH", namedCurve: CURVE }, false, []);
  const key = await subtle.deriveKey({ name: "ECDH", public: theirs }, ephemeral.keys.privateKey, { name: "AES-GCM", length: 256 }, true, [
    "encrypt",
    "decrypt",
  ]);
  return { key, fingerprint: await fingerprint(await subtle.exportKey("raw", key)) };
}

/** A session key as base64 of its raw bytes, to hand to a linked device inside the encrypted link payload. */
export async function exportSessionKey(session) {
  return toBase64(await subtle.exportKey("raw", session.key));
}

export async function importSessionKey(rawBase64) {
  const raw = fromBase64(rawBase64);
  const key = await subtle.importKey("raw", raw, { name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
  return { key, fingerprint: await fingerprint(raw) };
}

/** AES-256-GCM: the ciphertext and the tag apart, as the API's fields carry them. */
export async function encryptBytes(sessionKey, plaintext) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv }, sessionKey.key, plaintext));
  return { ciphertext: sealed.slice(0, -TAG_BYTES), iv: toBase64(iv), authTag: toBase64(sealed.slice(-TAG_BYTES)) };
}

export async function decryptBytes(sessionKey, ciphertext, iv, authTag) {
  const sealed = new Uint8Array(ciphertext.length + TAG_BYTES);
  sealed.set(ciphertext);
  sealed.set(fromBase64(authTag), ciphertext.length);
  return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: fromBase64(iv) }, sessionKey.key, sealed));
}

/** A text message's fields for POST /messages/send or send_message, signed by the sender. */
export async function sealMessage(identity, sessionKey, receiverId, text, messageType = "text") {
  const { ciphertext, iv, authTag } = await encryptBytes(sessionKey, utf8(text));
  const fields = {
    receiverId,
    encryptedContent: toBase64(ciphertext),
    iv,
    authTag,
    nonce: toBase64(crypto.getRandomValues(new Uint8Array(16))),
    timestamp: new Date().toISOString(),
    messageType,
  };
  return { ...fields, signature: await sign(identity, signedPart(fields)) };
}

/** Opens a message record: checks the sender's signature, then decrypts. */
export async function openMessage(senderPublicKeyPem, sessionKey, record) {
  const fields = { ...record, timestamp: record.clientTimestamp };
  const verified = await verify(senderPublicKeyPem, record.signature, signedPart(fields));
  const plain = await decryptBytes(sessionKey, fromBase64(record.encryptedContent), record.iv, record.authTag);
  return { text: new TextDecoder().decode(plain), verified };
}

// What a message signature covers: who it is for, when and which nonce (so it cannot be replayed
// elsewhere), and the sealed content.
const signedPart = (fields) =>
  [fields.receiverId, fields.messageType, fields.nonce, fields.timestamp, fields.iv, fields.encryptedContent, fields.authTag].join(".");

/** A file's upload fields: the encrypted bytes and the signature over iv || ciphertext || tag. */
export async function sealFile(identity, sessionKey, bytes) {
  const { ciphertext, iv, authTag } = await encryptBytes(sessionKey, bytes);
  const signature = await sign(identity, fileSignedPart(ciphertext, iv, authTag));
  return { ciphertext, iv, authTag, signature };
}

export async function openFile(senderPublicKeyPem, sessionKey, ciphertext, record) {
  const verified = await verify(senderPublicKeyPem, record.signature, fileSignedPart(ciphertext, record.iv, record.authTag));
  return { bytes: await decryptBytes(sessionKey, ciphertext, record.iv, record.authTag), verified };
}

function fileSignedPart(ciphertext, iv, authTag) {
  const ivBytes = fromBase64(iv);
  const tagBytes = fromBase64(authTag);
  const all = new Uint8Array(ivBytes.length + ciphertext.length + tagBytes.length);
  all.set(ivBytes);
  all.set(ciphertext, ivBytes.length);
  all.set(tagBytes, ivBytes.length + ciphertext.length);
  return all;
}
