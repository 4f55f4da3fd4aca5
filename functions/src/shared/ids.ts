import { randomBytes } from "node:crypto";

/**
 * Opaque, globally unique ids: a prefix like the guide's examples and 24 URL-safe random characters
 * (144 bits), as the contract asks (at least 120 bits).
 */
export type IdPrefix = "user" | "msg" | "exchange" | "file" | "sess" | "dev" | "link";

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(18).toString("base64url")}`;
}

/** The shape every id we mint has; ids from clients are checked against it before any lookup. */
export const ID_PATTERN = /^(user|msg|exchange|file|sess|dev|link)_[A-Za-z0-9_-]{20,64}$/;

/** The id two users share whichever way round they are named: a conversation, a key exchange pair. */
export function conversationIdOf(userA: string, userB: string): string {
  return userA < userB ? `${userA}__${userB}` : `${userB}__${userA}`;
}

export function isIdOf(prefix: IdPrefix, value: string): boolean {
  return ID_PATTERN.test(value) && value.startsWith(`${prefix}_`);
}

/**
 * A device is a signed-in session (CONTRACT.md "Devices"): its public id is the session's with the `dev_`
 * prefix, so it needs no lookup and no token change, and the session id (which names the refresh token's
 * document) is never shown to other devices.
 */
export function deviceIdOf(sessionId: string): string {
  return `dev_${sessionId.slice("sess_".length)}`;
}

/** The session behind a device id, or undefined if the id is not one. */
export function sessionIdOfDevice(deviceId: string): string | undefined {
  return isIdOf("dev", deviceId) ? `sess_${deviceId.slice("dev_".length)}` : undefined;
}
