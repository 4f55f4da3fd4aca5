import type { Firestore } from "firebase-admin/firestore";

/**
 * The Firestore layout, written down once. Every document id below is either minted by the server
 * (see shared/ids.ts) or derived from validated input (lower-cased usernames, hashes); ids from clients
 * are checked against their pattern before they become part of a path.
 *
 * users/{userId}                      email, username, usernameLower, passwordHash, publicKey,
 *                                     createdAt, lastLogin, lastSeen
 *   contacts/{contactUserId}          addedAt: one direction of the contact relation (I added them)
 * userEmails/{sha256(lower email)}    userId: uniqueness claim on the email
 * usernames/{usernameLower}           userId: uniqueness claim on the username
 * sessions/{sessionId}                userId, createdAt, expiresAt (TTL), revokedAt, refreshTokenHash,
 *                                     revokeReason
 * rateLimits/{sha256(bucket key)}     tokens, updatedAtMs, expiresAt (TTL): token buckets shared by
 *                                     every instance
 *
 * Fields named expiresAt hold a Firestore Timestamp and carry a TTL policy in production
 * (docs/DEPLOY.md), so expired sessions and buckets disappear on their own.
 */
export const COLLECTIONS = {
  users: "users",
  contacts: "contacts",
  userEmails: "userEmails",
  usernames: "usernames",
  sessions: "sessions",
  rateLimits: "rateLimits",
} as const;

export type { Firestore };
