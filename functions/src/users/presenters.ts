import type { ContactRecord, UserRecord } from "./repository";

/** What clients see of users: never the password hash, never someone else's email. */

export interface Presence {
  isOnline: boolean;
  lastSeen: Date | null;
}

export function toProfile(user: UserRecord) {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    publicKey: user.publicKey,
    createdAt: user.createdAt.toISOString(),
    lastLogin: user.lastLogin?.toISOString() ?? null,
  };
}

export function toPublicUser(user: UserRecord) {
  return { id: user.id, username: user.username, publicKey: user.publicKey };
}

export function toContact(contact: ContactRecord, presence: Presence) {
  return {
    ...toPublicUser(contact.user),
    addedAt: contact.addedAt.toISOString(),
    lastSeen: presence.lastSeen?.toISOString() ?? null,
    isOnline: presence.isOnline,
  };
}
