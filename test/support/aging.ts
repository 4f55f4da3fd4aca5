import { createHash, randomBytes } from "node:crypto";
import { Timestamp, type Firestore } from "firebase-admin/firestore";
import { conversationIdOf, newId } from "../../functions/src/shared/ids";
import { storedUserOf } from "../../functions/src/users/repository";

/**
 * What a day of local use leaves in the emulator, which runs no TTL deletion: users with sessions and
 * presence, a conversation history (most of it delivered), every nonce, and every relay event ever
 * written, in the feeds of relay instances long gone and in the collection the previous relay design
 * used. Written straight into the layout (shared/firestore.ts) in batches, so it takes seconds.
 */
export interface AgingPlan {
  users: number;
  messages: number;
  /** Share of messages never acknowledged (their receivers' backlogs). */
  undeliveredShare: number;
  events: number;
  deadInstances: number;
}

export const A_DAY_OF_USE: AgingPlan = { users: 1500, messages: 6000, undeliveredShare: 0.2, events: 12_000, deadInstances: 20 };

const BATCH_SIZE = 500;
const PARALLEL_BATCHES = 4;
const b64 = (bytes: number) => randomBytes(bytes).toString("base64");

export async function ageDatabase(db: Firestore, plan: AgingPlan = A_DAY_OF_USE): Promise<{ documents: number }> {
  const writes: Array<(batch: FirebaseFirestore.WriteBatch) => void> = [];
  const dayAgo = Date.now() - 24 * 3600_000;
  const userIds = Array.from({ length: plan.users }, () => newId("user"));
  const instanceIds = Array.from({ length: plan.deadInstances }, (_, i) => `relay_aged_instance_${String(i).padStart(6, "0")}`);

  for (const [index, id] of userIds.entries()) {
    const username = `aged_${index}_${randomBytes(3).toString("hex")}`;
    const createdAt = Timestamp.fromMillis(dayAgo + index);
    const user = { email: `${username}@example.com`, username, passwordHash: "aged-account", publicKey: "aged", createdAt: createdAt.toDate() };
    writes.push((batch) => batch.set(db.collection("users").doc(id), { ...storedUserOf(user), lastLogin: createdAt, lastSeen: createdAt }));
    writes.push((batch) =>
      batch.set(db.collection("sessions").doc(newId("sess")), {
        userId: id,
        createdAt,
        expiresAt: Timestamp.fromMillis(Date.now() + 86_400_000),
        revokedAt: null,
        refreshTokenHash: randomBytes(32).toString("hex"),
      }),
    );
    writes.push((batch) => batch.set(db.collection("presence").doc(id), { instances: {}, lastSeen: createdAt }));
  }

  const sequences = new Map<string, number>();
  for (let i = 0; i < plan.messages; i++) {
    const senderId = userIds[Math.floor(Math.random() * userIds.length)]!;
    let receiverId = userIds[Math.floor(Math.random() * userIds.length)]!;
    if (receiverId === senderId) receiverId = userIds[(userIds.indexOf(senderId) + 1) % userIds.length]!;
    const pair = `${senderId}__${receiverId}`;
    const sequenceNumber = (sequences.get(pair) ?? 0) + 1;
    sequences.set(pair, sequenceNumber);
    const at = dayAgo + i * 10;
    const nonce = b64(16);
    const messageId = newId("msg");
    writes.push((batch) =>
      batch.set(db.collection("messages").doc(messageId), {
        senderId,
        receiverId,
        conversationId: conversationIdOf(senderId, receiverId),
        encryptedContent: b64(96),
        iv: b64(12),
        authTag: b64(16),
        nonce,
        signature: b64(64),
        messageType: "text",
        sequenceNumber,
        timestamp: Timestamp.fromMillis(at),
        clientTimestamp: new Date(at).toISOString(),
        deliveredAt: Math.random() < plan.undeliveredShare ? null : Timestamp.fromMillis(at + 50),
      }),
    );
    writes.push((batch) =>
      batch.set(db.collection("nonces").doc(createHash("sha256").update(`${senderId}\n${nonce}`).digest("hex")), {
        senderId,
        messageId,
        expiresAt: Timestamp.fromMillis(at + 15 * 60_000),
      }),
    );
  }
  for (const [pair, lastSequence] of sequences) {
    writes.push((batch) => batch.set(db.collection("pairCounters").doc(pair), { lastSequence, lastTimestampMs: dayAgo, tokens: 60, tokensAtMs: dayAgo }));
  }

  for (let i = 0; i < plan.events; i++) {
    const userId = userIds[i % userIds.length]!;
    const instanceId = instanceIds[i % instanceIds.length]!;
    const event = {
      userId,
      type: "typing_indicator",
      payload: { fromUserId: userIds[(i + 1) % userIds.length], toUserId: userId, isTyping: i % 2 === 0 },
      createdAt: Timestamp.fromMillis(dayAgo + i * 5),
      expiresAt: Timestamp.fromMillis(dayAgo + i * 5 + 3600_000),
    };
    // Half where this design keeps them (dead instances' feeds), half where the previous one did.
    if (i % 2 === 0) writes.push((batch) => batch.set(db.collection("relayInstances").doc(instanceId).collection("relayEvents").doc(), event));
    else writes.push((batch) => batch.set(db.collection("relayEvents").doc(), { ...event, instanceId }));
  }

  const batches: Array<Array<(batch: FirebaseFirestore.WriteBatch) => void>> = [];
  for (let start = 0; start < writes.length; start += BATCH_SIZE) batches.push(writes.slice(start, start + BATCH_SIZE));
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL_BATCHES }, async () => {
      while (next < batches.length) {
        const batch = db.batch();
        for (const write of batches[next++]!) write(batch);
        await batch.commit();
      }
    }),
  );
  return { documents: writes.length };
}
