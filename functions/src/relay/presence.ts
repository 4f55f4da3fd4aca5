import { FieldPath, FieldValue, Timestamp, type Firestore } from "firebase-admin/firestore";
import type { Clock } from "../shared/clock";
import { KeyedQueue } from "../shared/keyed-queue";
import { COLLECTIONS } from "../shared/firestore";
import type { Logger } from "../shared/logger";
import type { PresenceDirectory } from "../users/presence";
import type { Presence } from "../users/presenters";
import type { UserRecord, UserRepository } from "../users/repository";
import type { UserEvents } from "./events";

/**
 * Who is online, across relay instances, surviving the death of an instance.
 *
 * relayInstances/{instanceId}  heartbeatAt: each live instance beats every `heartbeatMs`.
 * presence/{userId}            instances.{instanceId}: true while the user has a socket there;
 *                              lastSeen: when the user was last online.
 *
 * A user is online while any listed instance is live (heartbeat fresher than `staleAfterMs`). An instance
 * that stops beating is swept by a survivor, which takes it out of every presence document and announces
 * `user_offline` for users left with no live instance. Heartbeat cost is one write per instance, not
 * per user.
 */
export interface PresenceTiming {
  heartbeatMs: number;
  staleAfterMs: number;
}

export const DEFAULT_PRESENCE_TIMING: PresenceTiming = { heartbeatMs: 10_000, staleAfterMs: 30_000 };

interface InstanceDoc {
  heartbeatAt?: Timestamp;
  /** The instance's own notion of "dead": no heartbeat for this long. */
  staleAfterMs?: number;
}

function isDead(instance: InstanceDoc | undefined, nowMs: number): boolean {
  const heartbeat = instance?.heartbeatAt?.toMillis() ?? 0;
  return heartbeat < nowMs - (instance?.staleAfterMs ?? DEFAULT_PRESENCE_TIMING.staleAfterMs);
}

interface PresenceDoc {
  instances?: Record<string, boolean>;
  lastSeen?: Timestamp | null;
}

/** Reads presence for the contacts API and for fan-out; needs no running relay. */
export class FirestorePresenceDirectory implements PresenceDirectory {
  private liveCache: { at: number; ids: Set<string> } | undefined;

  constructor(
    protected readonly db: Firestore,
    protected readonly clock: Clock,
    protected readonly timing: PresenceTiming = DEFAULT_PRESENCE_TIMING,
  ) {}

  protected get presence() {
    return this.db.collection(COLLECTIONS.presence);
  }

  protected get instances() {
    return this.db.collection(COLLECTIONS.relayInstances);
  }

  /**
   * Ids of instances whose heartbeat is fresh by their own declared staleness (so one instance with
   * other timing never judges its peers by its own clockwork). Cached for a second; there are few.
   */
  async liveInstanceIds(): Promise<Set<string>> {
    const now = this.clock.now().getTime();
    if (this.liveCache && now - this.liveCache.at < 1000) return this.liveCache.ids;
    const snapshot = await this.instances.get();
    const ids = new Set(snapshot.docs.filter((doc) => !isDead(doc.data() as InstanceDoc, now)).map((doc) => doc.id));
    this.liveCache = { at: now, ids };
    return ids;
  }

  protected forgetLiveCache(): void {
    this.liveCache = undefined;
  }

  async lookup(users: UserRecord[]): Promise<Map<string, Presence>> {
    const result = new Map<string, Presence>();
    if (users.length === 0) return result;
    const [docs, live] = await Promise.all([
      this.db.getAll(...users.map((user) => this.presence.doc(user.id))),
      this.liveInstanceIds(),
    ]);
    users.forEach((user, index) => {
      const data = docs[index]!.data() as PresenceDoc | undefined;
      const isOnline = Object.keys(data?.instances ?? {}).some((id) => live.has(id));
      const lastSeen = isOnline ? this.clock.now() : (data?.lastSeen?.toDate() ?? user.lastSeen ?? user.lastLogin);
      result.set(user.id, { isOnline, lastSeen });
    });
    return result;
  }
}

/** The running relay instance's side: heartbeat, connect/disconnect transitions, sweeping dead peers. */
export class PresenceTracker extends FirestorePresenceDirectory {
  private timer: NodeJS.Timeout | undefined;
  private readonly localUsers = new Set<string>();

  constructor(
    db: Firestore,
    clock: Clock,
    private readonly instanceId: string,
    private readonly users: UserRepository,
    private readonly events: UserEvents,
    private readonly logger: Logger,
    timing: PresenceTiming = DEFAULT_PRESENCE_TIMING,
  ) {
    super(db, clock, timing);
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat()
        .then(() => this.sweepDeadInstances())
        .catch((error: Error) => this.logger.warn("presence heartbeat failed", { error }));
    }, this.timing.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    const now = this.clock.now().getTime();
    await this.instances.doc(this.instanceId).set({
      heartbeatAt: Timestamp.fromMillis(now),
      staleAfterMs: this.timing.staleAfterMs,
      expiresAt: Timestamp.fromMillis(now + 24 * 3600_000),
    });
    this.lastHeartbeatMs = Date.now(); // real time, for the heartbeat-age metric (telemetry/)
  }

  /** When this instance's heartbeat was last written (epoch ms). */
  lastHeartbeatMs: number | undefined;

  /** The user's first socket on this instance. Announces user_online if they were offline everywhere. */
  async userConnected(userId: string): Promise<void> {
    this.localUsers.add(userId);
    const ref = this.presence.doc(userId);
    const live = await this.liveInstanceIds();
    const wasOnline = await this.db.runTransaction(async (tx) => {
      const data = (await tx.get(ref)).data() as PresenceDoc | undefined;
      const elsewhere = Object.keys(data?.instances ?? {}).some((id) => id !== this.instanceId && live.has(id));
      tx.set(ref, { instances: { [this.instanceId]: true } }, { merge: true });
      return elsewhere;
    });
    if (!wasOnline) await this.announce(userId, "user_online", this.clock.now());
  }

  /** The user's last socket on this instance is gone. Announces user_offline if no other instance has them. */
  async userDisconnected(userId: string): Promise<void> {
    this.localUsers.delete(userId);
    await this.removeInstanceFrom(userId, this.instanceId, this.clock.now());
  }

  private async removeInstanceFrom(userId: string, instanceId: string, lastSeen: Date): Promise<void> {
    const ref = this.presence.doc(userId);
    const live = await this.liveInstanceIds();
    const stillOnline = await this.db.runTransaction(async (tx) => {
      const data = (await tx.get(ref)).data() as PresenceDoc | undefined;
      const elsewhere = Object.keys(data?.instances ?? {}).some((id) => id !== instanceId && live.has(id));
      tx.set(
        ref,
        {
          instances: { [instanceId]: FieldValue.delete() },
          ...(elsewhere ? {} : { lastSeen: Timestamp.fromDate(lastSeen) }),
        },
        { merge: true },
      );
      return elsewhere;
    });
    if (!stillOnline) await this.announce(userId, "user_offline", lastSeen);
  }

  /**
   * user_online / user_offline to the user's presence peers (mutual contacts, no block either way:
   * UserRepository.presencePeers); only connected ones get a write.
   */
  private async announce(userId: string, type: "user_online" | "user_offline", at: Date): Promise<void> {
    const peers = await this.users.presencePeers(userId);
    await this.events.publishToMany([...peers], type, {
      userId,
      status: type === "user_online" ? "online" : "offline",
      lastSeen: at.toISOString(),
    });
  }

  /** Takes instances that stopped beating out of presence; one survivor claims each dead instance. */
  async sweepDeadInstances(): Promise<void> {
    const all = await this.instances.get();
    for (const instance of all.docs) {
      if (instance.id === this.instanceId || !isDead(instance.data() as InstanceDoc, this.clock.now().getTime())) continue;
      const claimed = await this.db.runTransaction(async (tx) => {
        const current = await tx.get(instance.ref);
        const data = current.data() as InstanceDoc | undefined;
        if (!current.exists || !isDead(data, this.clock.now().getTime())) return undefined;
        tx.delete(instance.ref);
        return data?.heartbeatAt?.toDate() ?? this.clock.now();
      });
      if (!claimed) continue;
      this.forgetLiveCache();
      const stranded = await this.presence.where(new FieldPath("instances", instance.id), "==", true).select().get();
      this.logger.info("swept a dead relay instance", { instanceId: instance.id, users: stranded.size });
      for (const user of stranded.docs) await this.removeInstanceFrom(user.id, instance.id, claimed);
    }
  }

  /** Graceful stop: this instance's users go offline (unless connected elsewhere) and it leaves the list. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const userId of [...this.localUsers]) {
      await this.userDisconnected(userId).catch((error: Error) => this.logger.warn("presence stop failed", { error }));
    }
    await this.instances.doc(this.instanceId).delete();
  }
}

/**
 * The users with sockets on this instance. A user's first socket here registers the instance in the
 * user's presence document, and their last one takes it out; connect and disconnect of one user are
 * applied in order. A socket counts from the moment it claims its user, so the per-user cap
 * (limits.ts) holds under concurrent authentications.
 */
export class ConnectedUsers {
  private readonly socketsByUser = new Map<string, number>();
  /** The presence registration of each user here (shared by the user's sockets). */
  private readonly registrations = new Map<string, Promise<void>>();
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly tracker: PresenceTracker,
    private readonly logger: Logger,
  ) {}

  socketsHere(userId: string): number {
    return this.socketsByUser.get(userId) ?? 0;
  }

  get size(): number {
    return this.socketsByUser.size;
  }

  /**
   * A socket of `userId` is here. Counts it at once, and resolves once the user's presence lists this
   * instance (rejects if that write failed: the caller refuses the socket, and its disconnect calls remove).
   */
  async add(userId: string): Promise<void> {
    const held = this.socketsHere(userId);
    this.socketsByUser.set(userId, held + 1);
    if (held === 0) this.registrations.set(userId, this.queue.run(userId, () => this.tracker.userConnected(userId)));
    await this.registrations.get(userId);
  }

  /** A socket of `userId` has gone (only for sockets that were added). */
  remove(userId: string): void {
    const left = this.socketsHere(userId) - 1;
    if (left > 0) {
      this.socketsByUser.set(userId, left);
      return;
    }
    this.socketsByUser.delete(userId);
    this.registrations.delete(userId);
    void this.queue
      .run(userId, () => this.tracker.userDisconnected(userId))
      .catch((error: Error) => this.logger.warn("presence disconnect failed", { userId, error }));
  }

  /** Resolves once every presence change queued so far is written. */
  idle(): Promise<void> {
    return this.queue.idle();
  }
}
