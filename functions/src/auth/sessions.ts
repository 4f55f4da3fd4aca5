import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { FieldValue, Timestamp, type DocumentReference, type DocumentSnapshot, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { errors } from "../shared/errors";
import { COLLECTIONS } from "../shared/firestore";
import { AppError } from "../shared/errors";
import { deviceIdOf, isIdOf, newId, sessionIdOfDevice } from "../shared/ids";
import type { UserEventPublisher } from "../shared/user-events";

/**
 * Sessions back both tokens. The access token names its session; the refresh token is
 * `<sessionId>.<secret>` and only the SHA-256 of the current secret is stored, beside the hashes of the
 * secrets it replaced. Refreshing rotates the secret. Presenting a secret this session issued earlier
 * means the token was stolen or replayed, so the whole session is revoked; any other wrong secret is
 * only refused (the session id is in every access token, so it must not be a switch that ends sessions).
 * A session lives `refreshTokenTtlSeconds` past its last refresh, and never longer than
 * `sessionMaxAgeSeconds` past its creation.
 *
 * A session is also a device (CONTRACT.md "Devices"): it carries the device's name, and its id with the
 * `dev_` prefix is the device id (shared/ids.ts). The user's document lists the devices that may still be
 * live (`deviceIds`, at most `maxDevices`): sessions add themselves in the transaction that creates them,
 * which is where the cap is enforced, and leave when they are revoked. An expired session stays listed
 * until the next login prunes it. Delivery reads that list (messages/repository.ts).
 */

interface SessionRecord {
  userId: string;
  /** What the device's owner calls it (CONTRACT.md: 1 to 64 characters). Absent on sessions from before devices. */
  deviceName?: string;
  createdAt: Timestamp;
  /** When the device last logged in or refreshed its token. */
  lastActiveAt?: Timestamp;
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

/** Unrevoked sessions read to list a user's devices (live ones are at most maxDevices). */
const DEVICE_LIST_READS = 100;
/** Firestore's limit on the writes of one batch. */
const BATCH_WRITES = 500;

export type RevokeReason = "logout" | "logout_all" | "password_changed" | "key_changed" | "refresh_token_reuse" | "device_removed";

/**
 * A session check that a caller runs inside its own transaction, reading the session document with
 * its other reads: the write then happens only if the session is active at that moment.
 */
export interface SessionGuard {
  ref: DocumentReference;
  /** Whether the snapshot shows the session active for the user (refused with errors.sessionEnded). */
  isActive(snapshot: DocumentSnapshot): boolean;
}

/** A live session as the device list shows it (CONTRACT.md "Devices"). */
export interface DeviceSession {
  sessionId: string;
  deviceId: string;
  /** Absent on sessions from before devices. */
  deviceName?: string;
  createdAt: Date;
  /** Absent on sessions from before devices. */
  lastActiveAt?: Date;
}

export interface SessionStore {
  /** Starts a session on a new device; refused with TOO_MANY_DEVICES when the account has `maxDevices` live ones. */
  create(userId: string, deviceName: string): Promise<{ sessionId: string; deviceId: string; refreshToken: string }>;
  /** True when the session exists, belongs to the user, is not revoked and has not expired. */
  isActive(sessionId: string, userId: string): Promise<boolean>;
  guard(sessionId: string, userId: string): SessionGuard;
  rotate(refreshToken: string): Promise<{ userId: string; sessionId: string; refreshToken: string }>;
  revoke(sessionId: string, userId: string, reason: RevokeReason): Promise<void>;
  /** The user's live sessions (devices), oldest first; at most DEVICE_LIST_READS documents read. */
  devices(userId: string): Promise<DeviceSession[]>;
  /** One live session of the user, or undefined (unknown, another user's, revoked or expired). */
  device(sessionId: string, userId: string): Promise<DeviceSession | undefined>;
  /** Revokes every active session of the user but `exceptSessionId`; answers how many it ended. */
  revokeAll(userId: string, reason: RevokeReason, exceptSessionId?: string): Promise<number>;
}

export interface SessionLifetimes {
  /** How long a session lives past its creation or last refresh. */
  refreshTokenTtlSeconds: number;
  /** How long a session may live at all, refreshed or not. */
  sessionMaxAgeSeconds: number;
  /** Live sessions (devices) one account may hold at once. */
  maxDevices: number;
}

/** The field of a user's document listing its devices that may be live (see the header comment). */
export const DEVICE_IDS_FIELD = "deviceIds";

export const tooManyDevices = (max: number) =>
  new AppError("TOO_MANY_DEVICES", `An account can have at most ${max} signed-in devices; remove one (DELETE /api/devices/:deviceId) or log out on one`, { maxDevices: max });

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
  const users = db.collection(COLLECTIONS.users);
  /** Takes ended sessions off their user's device list. */
  const forgetDevices = async (userId: string, sessionIds: string[]) => {
    if (sessionIds.length > 0) await users.doc(userId).update({ [DEVICE_IDS_FIELD]: FieldValue.arrayRemove(...sessionIds.map(deviceIdOf)) });
  };
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
  const deviceSessionOf = (snapshot: DocumentSnapshot): DeviceSession => {
    const session = snapshot.data() as SessionRecord;
    return {
      sessionId: snapshot.id,
      deviceId: deviceIdOf(snapshot.id),
      ...(session.deviceName !== undefined ? { deviceName: session.deviceName } : {}),
      createdAt: session.createdAt.toDate(),
      ...(session.lastActiveAt ? { lastActiveAt: session.lastActiveAt.toDate() } : {}),
    };
  };

  return {
    async create(userId, deviceName) {
      // Minted outside the transaction, so an attempt retried after it committed finds its own session.
      const sessionId = newId("sess");
      const deviceId = deviceIdOf(sessionId);
      const secret = newSecret();
      const ref = sessions.doc(sessionId);
      const userRef = users.doc(userId);
      await db.runTransaction(async (tx) => {
        const [own, user] = await tx.getAll(ref, userRef);
        if (own!.exists) return;
        const listed = ((user!.get(DEVICE_IDS_FIELD) as string[] | undefined) ?? []).filter((id) => sessionIdOfDevice(id) !== undefined);
        const listedSessions = listed.length === 0 ? [] : await tx.getAll(...listed.map((id) => sessions.doc(sessionIdOfDevice(id)!)));
        const live = listed.filter((_, index) => activeFor(listedSessions[index]!, userId));
        if (live.length >= lifetimes.maxDevices) throw tooManyDevices(lifetimes.maxDevices);
        const now = clock.now();
        const record: SessionRecord = {
          userId,
          deviceName,
          createdAt: Timestamp.fromDate(now),
          lastActiveAt: Timestamp.fromDate(now),
          expiresAt: expiryFor(now.getTime()),
          revokedAt: null,
          refreshTokenHash: hashSecret(secret).toString("hex"),
          previousRefreshTokenHashes: [],
        };
        tx.create(ref, record);
        // The pruned list: expired sessions leave it here, so it never holds more than maxDevices.
        tx.update(userRef, { [DEVICE_IDS_FIELD]: [...live, deviceId] });
      });
      return { sessionId, deviceId, refreshToken: `${sessionId}.${secret}` };
    },

    async devices(userId) {
      // The query rather than the user's device list, so sessions from before devices show too. Bounded:
      // live ones are at most maxDevices (plus those older sessions), and the TTL deletes expired ones.
      const snapshot = await sessions.where("userId", "==", userId).where("revokedAt", "==", null).limit(DEVICE_LIST_READS).get();
      return snapshot.docs
        .filter((doc) => activeFor(doc, userId))
        .map(deviceSessionOf)
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    },

    async device(sessionId, userId) {
      if (!isIdOf("sess", sessionId)) return undefined;
      const snapshot = await sessions.doc(sessionId).get();
      return activeFor(snapshot, userId) ? deviceSessionOf(snapshot) : undefined;
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
            lastActiveAt: Timestamp.fromDate(clock.now()),
          });
          return { kind: "rotated" as const, userId: session.userId };
        }
        // A retried transaction whose first attempt already rotated finds our own new secret stored.
        if (session.refreshTokenHash === nextHash) return { kind: "rotated" as const, userId: session.userId };
        if (previous.some((hash) => sameHash(presented, hash))) {
          tx.update(ref, { revokedAt: Timestamp.fromDate(clock.now()), revokeReason: "refresh_token_reuse" });
          tx.update(users.doc(session.userId), { [DEVICE_IDS_FIELD]: FieldValue.arrayRemove(deviceIdOf(sessionId)) });
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
      await forgetDevices(userId, [sessionId]);
      await announceRevoked(sessionId, userId);
    },

    async revokeAll(userId, reason, exceptSessionId) {
      // Two equality filters: Firestore serves them by merging the automatic single-field indexes.
      const snapshot = await sessions.where("userId", "==", userId).where("revokedAt", "==", null).get();
      const ending = snapshot.docs.filter((doc) => doc.id !== exceptSessionId && activeFor(doc, userId));
      const revokedAt = Timestamp.fromDate(clock.now());
      // The last batch also takes the ended devices off the user's list: one commit fewer than a write of its own.
      const perBatch = BATCH_WRITES - 1;
      for (let start = 0; start < ending.length; start += perBatch) {
        const batch = db.batch();
        for (const doc of ending.slice(start, start + perBatch)) batch.update(doc.ref, { revokedAt, revokeReason: reason });
        if (start + perBatch >= ending.length) {
          batch.update(users.doc(userId), { [DEVICE_IDS_FIELD]: FieldValue.arrayRemove(...ending.map((doc) => deviceIdOf(doc.id))) });
        }
        await batch.commit();
      }
      await Promise.all(ending.map((doc) => announceRevoked(doc.id, userId)));
      return ending.length;
    },
  };
}
