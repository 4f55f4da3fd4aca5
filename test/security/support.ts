import { randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import type { Firestore } from "firebase-admin/firestore";
import { COLLECTIONS } from "../../functions/src/shared/firestore";
import { base64url, claimsOf, type RegisteredUser, type TestApp } from "../support/app";

/** Helpers shared by the security stories (test/security/*.test.ts). */

/** Documents per collection, subcollections included, leaving out rate-limit buckets (they count refusals on purpose). */
export async function countDocuments(db: Firestore): Promise<Record<string, number>> {
  const names = Object.values(COLLECTIONS).filter((name) => name !== COLLECTIONS.rateLimits);
  const counts = await Promise.all(
    names.map(async (name) => {
      // Subcollections of users are counted across all users.
      const subcollection = name === COLLECTIONS.contacts || name === COLLECTIONS.blocked;
      const query = subcollection ? db.collectionGroup(name) : db.collection(name);
      return [name, (await query.count().get()).data().count] as const;
    }),
  );
  return Object.fromEntries(counts);
}

/** The upload form as the frontend sends it (FormData, the ciphertext as a Blob). */
export function uploadForm(receiverId: string, data: Buffer, fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  const values = {
    receiverId,
    filename: "report.pdf",
    iv: randomBytes(12).toString("base64"),
    authTag: randomBytes(16).toString("base64"),
    signature: randomBytes(64).toString("base64"),
    ...fields,
  };
  for (const [name, value] of Object.entries(values)) form.append(name, value);
  form.append("encryptedData", new Blob([new Uint8Array(data)]), "blob");
  return form;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  body: any;
  bytes: Buffer;
}

/** Any request with full control of the body (FormData, raw bytes) and the Authorization header. */
export async function send(
  app: Pick<TestApp, "baseUrl">,
  method: string,
  path: string,
  options: { authorization?: string; body?: RequestInit["body"]; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.authorization !== undefined) headers.Authorization = options.authorization;
  // A server that never answers is a failure of its own, not a test timeout.
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const response = await fetch(app.baseUrl + path, { method, headers, body: options.body, signal });
  const bytes = Buffer.from(await response.arrayBuffer());
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString("utf8"));
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, body, bytes };
}

export async function upload(app: TestApp, from: RegisteredUser, to: RegisteredUser, data: Buffer, fields: Record<string, string> = {}) {
  return send(app, "POST", "/api/files/upload", { authorization: `Bearer ${from.token}`, body: uploadForm(to.id, data, fields) });
}

/**
 * Every kind of bad credential a client can present, built from `victim`'s real token (so each keeps
 * the victim's real session and differs in one way only). "revoked" is not here: it needs a logout.
 */
export function forgedCredentials(app: TestApp, victim: RegisteredUser, other: RegisteredUser) {
  const { secret, audience, issuer } = app.config.jwt;
  const claims = claimsOf(victim.token);
  const [header, , signature] = victim.token.split(".");
  const nowSeconds = Math.floor(app.clock.now().getTime() / 1000);
  const sign = (payload: object, options: jwt.SignOptions = {}) =>
    jwt.sign(payload, secret, { algorithm: "HS256", audience, issuer, subject: victim.id, ...options });
  return {
    /** Not a bearer token at all. */
    malformed: "not.a-jwt",
    /** The victim's token with the payload rewritten to name another user, signature kept. */
    tampered: `${header}.${base64url({ ...claims, sub: other.id })}.${signature}`,
    /** Unsigned, `alg: none`. */
    algNone: `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ ...claims, exp: nowSeconds + 600 })}.`,
    /** Right secret and session, wrong audience. */
    wrongAudience: sign({ sid: claims.sid }, { audience: "someone-else", expiresIn: 600 }),
    /** Right everything, but expired a minute ago. */
    expired: sign({ sid: claims.sid, iat: nowSeconds - 1000, exp: nowSeconds - 60 }),
  };
}
