import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { COLLECTIONS } from "../shared/firestore";
import { isIdOf, newId } from "../shared/ids";
import type { UserEventPublisher } from "../shared/user-events";

/**
 * Sessions back both tokens. The access token names its session; the refresh token is
 * `<sessionId>.<secret>` and only the SHA-256 of the current secret is stored, beside the hashes of the
 * secrets it replaced. Refreshing rotates the secret. Presenting a secret this session issued earlier
 * means the token was stolen or replayed, so the whole session is revoked; any other wrong secret is
 * only refused (the session id is in every access token, so it must not be a switch that ends sessions).
 * A session lives `refreshTokenTtlSeconds` past its last refresh, and never longer than
 * `sessionMaxAgeSeconds` past its creation.
 */

interface SessionRecord {
  userId: string;
  createdAt: Timestamp;
  expiresAt: Timestamp;
  revokedAt: Timestamp | null;
  revokeReason?: string;
  refreshTokenHash: string;
  /** The hashes of the secrets this session issued before the current one, oldest first (at most REMEMBERED_SECRETS). */
  previousRefreshTokenHashes?: string[];
}

/**
 * How many replaced refresh secrets a session remembers, so their reuse is recognised as theft. A client
 * refreshes about once per access token lifetime of use (15 minutes): 100 covers days of activity.
 */
export const REMEMBERED_SECRETS = 100;

/** Firestore's limit on the writes of one batch. */
const BATCH_WRITES = 500;

export type RevokeReason = "logout" | "logout_all" | "password_changed" | "key_changed" | "refresh_token_reuse";

/**
 * A session check that a caller runs inside its own transaction, reading the session document with
 * its other reads: the write then happens only if the session is active at that moment.
 */
export interface SessionGuard {
  ref: DocumentReference;
  /** Whether the snapshot shows the session active for the user (refused with errors.sessionEnded). */
  isActive(snapshot: DocumentSnapshot): boolean;
}

export interface SessionStore {
  create(userId: string): Promise<{ sessionId: string; refreshToken: string }>;
  /** True when the session exists, belongs to the user, is not revoked and has not expired. */
  isActive(sessionId: string, userId: string): Promise<boolean>;
  guard(sessionId: string, userId: string): SessionGuard;
  rotate(refreshToken: string): Promise<{ userId: string; sessionId: string; refreshToken: string }>;
  revoke(sessionId: string, userId: string, reason: RevokeReason): Promise<void>;
  /** Revokes every active session of the user but `exceptSessionId`; answers how many it ended. */
  revokeAll(userId: string, reason: RevokeReason, exceptSessionId?: string): Promise<number>;
}

export interface SessionLifetimes {
  /** How long a session lives past its creation or last refresh. */
  refreshTokenTtlSeconds: number;
  /** How long a session may live at all, refreshed or not. */
  sessionMaxAgeSeconds: number;
}

const hashSecret = (secret: string) => createHash("sha256").update(secret).digest();
const newSecret = () => randomBytes(32).toString("base64url");
const sameHash = (presented: Buffer, storedHex: string) => {
  const stored = Buffer.from(storedHex, "hex");
  return presented.length === stored.length && timingSafeEqual(presented, stored);
};

export function createSessionStore(
  db: Firestore,
  clock: Clock,
  lifetimes: SessionLifetimes,
  events: UserEventPublisher,
): SessionStore {
  const sessions = db.collection(COLLECTIONS.sessions);
  const maxAgeMs = lifetimes.sessionMaxAgeSeconds * 1000;
  /** The expiry of a session created at `createdAtMs`, refreshed now: never past its absolute end. */
  const expiryFor = (createdAtMs: number) =>
    Timestamp.fromMillis(Math.min(clock.now().getTime() + lifetimes.refreshTokenTtlSeconds * 1000, createdAtMs + maxAgeMs));
  /** Checks the absolute end too, so a lowered SESSION_MAX_AGE_SECONDS holds for older sessions. */
  const isLive = (session: SessionRecord) => {
    const nowMs = clock.now().getTime();
    return session.revokedAt === null && session.expiresAt.toMillis() > nowMs && session.createdAt.toMillis() + maxAgeMs > nowMs;
  };
  /** After a session is revoked: whichever relay instance holds its sockets disconnects them. */
  const announceRevoked = (sessionId: string, userId: string) => events.publish(userId, "session_revoked", { sessionId });
  const activeFor = (snapshot: DocumentSnapshot, userId: string) => {
    const session = snapshot.data() as SessionRecord | undefined;
    return session !== undefined && session.userId === userId && isLive(session);
  };

  return {
    async create(userId) {
      const sessionId = newId("sess");
      const secret = newSecret();
      const now = clock.now();
      const record: SessionRecord = {
        userId,
        createdAt: Timestamp.fromDate(now),
        expiresAt: expiryFor(now.getTime()),
        revokedAt: null,
        refreshTokenHash: hashSecret(secret).toString("hex"),
        previousRefreshTokenHashes: [],
      };
      await sessions.doc(sessionId).create(record);
      return { sessionId, refreshToken: `${sessionId}.${secret}` };
    },

    async isActive(sessionId, userId) {
      if (!isIdOf("sess", sessionId)) return false;
      return activeFor(await sessions.doc(sessionId).get(), userId);
    },

    guard(sessionId, userId) {
      if (!isIdOf("sess", sessionId)) throw errors.sessionEnded();
      return {
        ref: sessions.doc(sessionId),
        isActive: (snapshot) => activeFor(snapshot, userId),
      };
    },

    async rotate(refreshToken) {
      const [sessionId, secret, ...rest] = refreshToken.split(".");
      if (!sessionId || !secret || rest.length > 0 || !isIdOf("sess", sessionId)) {
        throw errors.unauthorized("Invalid refresh token");
      }
      const ref = sessions.doc(sessionId);
      const nextSecret = newSecret();
      const nextHash = hashSecret(nextSecret).toString("hex");
      const presented = hashSecret(secret);
      // The transaction decides; the error is thrown after it commits, so a detected reuse stays revoked.
      const outcome = await db.runTransaction(async (tx) => {
        const session = (await tx.get(ref)).data() as SessionRecord | undefined;
        if (!session || !isLive(session)) return { kind: "invalid" as const };
        const previous = session.previousRefreshTokenHashes ?? [];
        if (sameHash(presented, session.refreshTokenHash)) {
          tx.update(ref, {
            refreshTokenHash: nextHash,
            previousRefreshTokenHashes: [...previous, session.refreshTokenHash].slice(-REMEMBERED_SECRETS),
            expiresAt: expiryFor(session.createdAt.toMillis()),
          });
          return { kind: "rotated" as const, userId: session.userId };
        }
        // A retried transaction whose first attempt already rotated finds our own new secret stored.
        if (session.refreshTokenHash === nextHash) return { kind: "rotated" as const, userId: session.userId };
        if (previous.some((hash) => sameHash(presented, hash))) {
          tx.update(ref, { revokedAt: Timestamp.fromDate(clock.now()), revokeReason: "refresh_token_reuse" });
          return { kind: "reused" as const, userId: session.userId };
        }
        return { kind: "invalid" as const };
      });
      if (outcome.kind === "invalid") throw errors.unauthorized("Invalid or expired refresh token");
      if (outcome.kind === "reused") {
        await announceRevoked(sessionId, outcome.userId);
        throw errors.unauthorized("Refresh token was already used; the session has been revoked");
      }
      return { userId: outcome.userId, sessionId, refreshToken: `${sessionId}.${nextSecret}` };
    },

    async revoke(sessionId, userId, reason) {
      await sessions.doc(sessionId).update({ revokedAt: Timestamp.fromDate(clock.now()), revokeReason: reason });
      await announceRevoked(sessionId, userId);
    },

    async revokeAll(userId, reason, exceptSessionId) {
      // Two equality filters: Firestore serves them by merging the automatic single-field indexes.
      const snapshot = await sessions.where("userId", "==", userId).where("revokedAt", "==", null).get();
      const ending = snapshot.docs.filter((doc) => doc.id !== exceptSessionId && activeFor(doc, userId));
      const revokedAt = Timestamp.fromDate(clock.now());
      for (let start = 0; start < ending.length; start += BATCH_WRITES) {
        const batch = db.batch();
        for (const doc of ending.slice(start, start + BATCH_WRITES)) batch.update(doc.ref, { revokedAt, revokeReason: reason });
        await batch.commit();
      }
      await Promise.all(ending.map((doc) => announceRevoked(doc.id, userId)));
      return ending.length;
    },
  };
}
