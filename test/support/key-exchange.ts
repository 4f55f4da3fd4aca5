import { expect } from "vitest";
import { registerUser, type RegisteredUser, type TestApp } from "./app";
import { newEphemeral, newIdentity, signDer, signP1363, type Curve, type Identity } from "./webcrypto";

/** Users who can sign key exchanges, and the two signed steps of an exchange as a client takes them. */

/** A user whose registered publicKey is a Web Crypto ECDSA identity key. */
export interface Person extends RegisteredUser {
  identity: Identity;
}

export async function person(app: TestApp, curve: Curve = "P-256"): Promise<Person> {
  const identity = await newIdentity(curve);
  return { ...(await registerUser(app, { publicKey: identity.publicKeyPem })), identity };
}

/** How an offer departs from the honest default (a P-256 ephemeral key, signed in P1363 form). */
export interface OfferOptions {
  curve?: Curve;
  /** Sign in DER form instead. */
  der?: boolean;
  /** Send this signature instead of a real one. */
  signature?: string;
}

async function offer(signer: Person, options: OfferOptions) {
  const ephemeral = await newEphemeral(options.curve ?? "P-256");
  const signature = options.signature ?? (await (options.der ? signDer : signP1363)(signer.identity, ephemeral.publicKeyPem));
  return { ephemeral, body: { ephemeralPublicKey: ephemeral.publicKeyPem, signature } };
}

/** A signed ephemeral key, as initiate and respond take it. */
export async function signedEphemeral(signer: Person): Promise<{ ephemeralPublicKey: string; signature: string }> {
  return (await offer(signer, {})).body;
}

export async function initiate(app: TestApp, from: Person, to: Person, options: OfferOptions = {}) {
  const { ephemeral, body } = await offer(from, options);
  const response = await app.request("POST", "/api/keyexchange/initiate", { token: from.token, body: { targetUserId: to.id, ...body } });
  return { response, ephemeral };
}

export async function respond(app: TestApp, by: Person, exchangeId: string, options: OfferOptions = {}) {
  const { ephemeral, body } = await offer(by, options);
  const response = await app.request("POST", "/api/keyexchange/respond", { token: by.token, body: { exchangeId, ...body } });
  return { response, ephemeral };
}

/** An exchange `from` started with `to`, by its id; fails the test unless it was created. */
export async function initiateExchange(app: TestApp, from: Person, to: Person): Promise<string> {
  const { response } = await initiate(app, from, to);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.exchangeId;
}
