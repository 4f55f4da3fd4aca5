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
 * messages/{messageId}               senderId, receiverId, conversationId (both ids sorted, "__"),
 *                                     encryptedContent, iv, authTag, nonce, signature, messageType,
 *                                     sequenceNumber, timestamp (server), clientTimestamp, deliveredAt
 * pairCounters/{senderId__receiverId} lastSequence, lastTimestampMs, tokens, tokensAtMs: the pair's
 *                                     sequence counter and its send-rate bucket, advanced in the
 *                                     same transaction that stores the message
 * nonces/{sha256(senderId, nonce)}    senderId, messageId, expiresAt (TTL): nonces already used
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
  messages: "messages",
  pairCounters: "pairCounters",
  nonces: "nonces",
} as const;

export type { Firestore };
