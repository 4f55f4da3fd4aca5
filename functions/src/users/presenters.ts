import { z } from "zod";
import { isoTime } from "../shared/responses";
import { idOf } from "../shared/validation";
import type { ContactRecord, UserRecord } from "./repository";

/** What clients see of users: never the password hash, never someone else's email. */

const publicKey = z.string().describe("PEM SPKI EC public key (P-256 or P-384), exactly as registered");

export const publicUserSchema = z.object({
  id: idOf("user"),
  username: z.string(),
  publicKey,
});
export type PublicUser = z.output<typeof publicUserSchema>;

export const blockedUserSchema = z.object({ id: idOf("user"), username: z.string() });
export type BlockedUser = z.output<typeof blockedUserSchema>;

export const profileSchema = z.object({
  id: idOf("user"),
  email: z.string().describe("Lower-cased at registration"),
  username: z.string(),
  publicKey,
  createdAt: isoTime(),
  lastLogin: isoTime().nullable().describe("null until the first login"),
});
export type Profile = z.output<typeof profileSchema>;

export const contactSchema = publicUserSchema.extend({
  addedAt: isoTime(),
  lastSeen: isoTime()
    .nullable()
    .describe("Last time online (or the last login until the relay has seen the user); null unless the two are mutual contacts and neither blocks the other"),
  isOnline: z.boolean().describe("Has a socket on a live relay instance; false unless the two are mutual contacts and neither blocks the other"),
});
export type Contact = z.output<typeof contactSchema>;

export interface Presence {
  isOnline: boolean;
  lastSeen: Date | null;
}

export function toProfile(user: UserRecord): Profile {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    publicKey: user.publicKey,
    createdAt: user.createdAt.toISOString(),
    lastLogin: user.lastLogin?.toISOString() ?? null,
  };
}

export function toPublicUser(user: UserRecord): PublicUser {
  return { id: user.id, username: user.username, publicKey: user.publicKey };
}

export function toBlockedUser(user: UserRecord): BlockedUser {
  return { id: user.id, username: user.username };
}

/** What a user who does not share presence with the caller shows: nothing. */
export const HIDDEN_PRESENCE: Presence = { isOnline: false, lastSeen: null };

export function toContact(contact: ContactRecord, presence: Presence): Contact {
  return {
    ...toPublicUser(contact.user),
    addedAt: contact.addedAt.toISOString(),
    lastSeen: presence.lastSeen?.toISOString() ?? null,
    isOnline: presence.isOnline,
  };
}
