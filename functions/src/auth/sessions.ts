import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { COLLECTIONS } from "../shared/firestore";
import { isIdOf, newId } from "../shared/ids";

/**
 * Sessions back both tokens. The access token names its session; the refresh token is
 * `<sessionId>.<secret>` and only the SHA-256 of the current secret is stored. Refreshing rotates the
 * secret; presenting an old one means the token was stolen or replayed, so the whole session is revoked.
 */

interface SessionRecord {
  userId: string;
  createdAt: Timestamp;
  expiresAt: Timestamp;
  revokedAt: Timestamp | null;
  revokeReason?: string;
  refreshTokenHash: string;
}

export type RevokeReason = "logout" | "refresh_token_reuse";

/**
 * A session check that a caller runs inside its own transaction, reading the session document with
 * its other reads: the write then happens only if the session is active at that moment.
 */
export interface SessionGuard {
  ref: DocumentReference;
  /** Throws UNAUTHORIZED unless the snapshot shows the session active for the user. */
  assertActive(snapshot: DocumentSnapshot): void;
}

export interface SessionStore {
  create(userId: string): Promise<{ sessionId: string; refreshToken: string }>;
  /** True when the session exists, belongs to the user, is not revoked and has not expired. */
  isActive(sessionId: string, userId: string): Promise<boolean>;
  guard(sessionId: string, userId: string): SessionGuard;
  rotate(refreshToken: string): Promise<{ userId: string; sessionId: string; refreshToken: string }>;
  revoke(sessionId: string, userId: string, reason: RevokeReason): Promise<void>;
}

/** Told after a session is revoked, so the realtime relay can disconnect its sockets. */
export type OnSessionRevoked = (revoked: { sessionId: string; userId: string; reason: RevokeReason }) => Promise<void>;

const hashSecret = (secret: string) => createHash("sha256").update(secret).digest();
const newSecret = () => randomBytes(32).toString("base64url");

export function createSessionStore(
  db: Firestore,
  clock: Clock,
  ttlSeconds: number,
  onRevoked: OnSessionRevoked = async () => undefined,
): SessionStore {
  const sessions = db.collection(COLLECTIONS.sessions);
  const expiry = () => Timestamp.fromMillis(clock.now().getTime() + ttlSeconds * 1000);
  const activeFor = (snapshot: DocumentSnapshot, userId: string) => {
    const session = snapshot.data() as SessionRecord | undefined;
    return (
      session !== undefined &&
      session.userId === userId &&
      session.revokedAt === null &&
      session.expiresAt.toMillis() > clock.now().getTime()
    );
  };

  return {
    async create(userId) {
      const sessionId = newId("sess");
      const secret = newSecret();
      const record: SessionRecord = {
        userId,
        createdAt: Timestamp.fromDate(clock.now()),
        expiresAt: expiry(),
        revokedAt: null,
        refreshTokenHash: hashSecret(secret).toString("hex"),
      };
      await sessions.doc(sessionId).create(record);
      return { sessionId, refreshToken: `${sessionId}.${secret}` };
    },

    async isActive(sessionId, userId) {
      if (!isIdOf("sess", sessionId)) return false;
      return activeFor(await sessions.doc(sessionId).get(), userId);
    },

    guard(sessionId, userId) {
      if (!isIdOf("sess", sessionId)) throw errors.unauthorized("Session has ended; log in again");
      return {
        ref: sessions.doc(sessionId),
        assertActive(snapshot) {
          if (!activeFor(snapshot, userId)) throw errors.unauthorized("Session has ended; log in again");
        },
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
        if (!session || session.revokedAt !== null || session.expiresAt.toMillis() <= clock.now().getTime()) {
          return { kind: "invalid" as const };
        }
        const current = Buffer.from(session.refreshTokenHash, "hex");
        if (presented.length !== current.length || !timingSafeEqual(presented, current)) {
          // A retried transaction whose first attempt already rotated finds our own new secret stored.
          if (session.refreshTokenHash === nextHash) {
            return { kind: "rotated" as const, userId: session.userId };
          }
          tx.update(ref, { revokedAt: Timestamp.fromDate(clock.now()), revokeReason: "refresh_token_reuse" });
          return { kind: "reused" as const, userId: session.userId };
        }
        tx.update(ref, { refreshTokenHash: nextHash, expiresAt: expiry() });
        return { kind: "rotated" as const, userId: session.userId };
      });
      if (outcome.kind === "invalid") throw errors.unauthorized("Invalid or expired refresh token");
      if (outcome.kind === "reused") {
        await onRevoked({ sessionId, userId: outcome.userId, reason: "refresh_token_reuse" });
        throw errors.unauthorized("Refresh token was already used; the session has been revoked");
      }
      return { userId: outcome.userId, sessionId, refreshToken: `${sessionId}.${nextSecret}` };
    },

    async revoke(sessionId, userId, reason) {
      await sessions.doc(sessionId).update({ revokedAt: Timestamp.fromDate(clock.now()), revokeReason: reason });
      await onRevoked({ sessionId, userId, reason });
    },
  };
}
