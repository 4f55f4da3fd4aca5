import type { Firestore, Settings } from "firebase-admin/firestore";

/**
 * The Firestore layout, written down once. Every document id below is either minted by the server
 * (see shared/ids.ts) or derived from validated input (lower-cased usernames, hashes); ids from clients
 * are checked against their pattern before they become part of a path.
 *
 * users/{userId}                      email, username, usernameLower, passwordHash, publicKey,
 *                                     createdAt, lastLogin, lastSeen
 *   contacts/{contactUserId}          addedAt, contactUserId: one direction of the contact relation
 *                                     (I added them); the collection group answers "who added me"
 *   blocked/{blockedUserId}           blockedAt: I block them. Read inside the send and file-upload
 *                                     transactions (messages/repository.ts, files/repository.ts), and
 *                                     for presence and typing (users/repository.ts presencePeers)
 * userEmails/{sha256(lower email)}    userId: uniqueness claim on the email
 * usernames/{usernameLower}           userId: uniqueness claim on the username
 * sessions/{sessionId}                userId, createdAt, expiresAt (TTL), revokedAt, refreshTokenHash,
 *                                     previousRefreshTokenHashes (the last 100 replaced, to tell a
 *                                     reused token from a wrong one), revokeReason; found per user by
 *                                     userId == and revokedAt == null (logout-all, change-password)
 * messages/{messageId}               senderId, receiverId, conversationId (both ids sorted, "__"),
 *                                     encryptedContent, iv, authTag, nonce, signature, messageType,
 *                                     sequenceNumber, timestamp (server), clientTimestamp, deliveredAt,
 *                                     acknowledgementId (the first acknowledgement's, with deliveredAt),
 *                                     pendingDevices (the receiver's devices that have not acknowledged
 *                                     it, or ["*"]: shared/device-delivery.ts; a device's backlog is
 *                                     receiverId == and pendingDevices array-contains-any),
 *                                     expiresAt (TTL; only on disappearing messages: messages/expiry.ts)
 * messageExpiries/{messageId}         senderId, receiverId, messageId, expiredAt, sweepId: a
 *                                     `message_expired` notice the sender has not acknowledged yet
 *                                     (written with the message's deletion, messages/expiry-sweep.ts;
 *                                     deleted on acknowledgement)
 * pairCounters/{senderId__receiverId} lastSequence, lastTimestampMs, tokens, tokensAtMs: the pair's
 *                                     sequence counter and its send-rate bucket, advanced in the
 *                                     same transaction that stores the message
 * nonces/{sha256(senderId, nonce)}    senderId, messageId, expiresAt (TTL): nonces already used
 * keyExchanges/{exchangeId}          initiatorId, targetId, pairKey, status (pending | completed |
 *                                     superseded), both ephemeral keys and signatures, createdAt,
 *                                     expiresAt, completedAt, supersededBy, requestDeliveredAt,
 *                                     responseDeliveredAt, requestPendingDevices,
 *                                     responsePendingDevices (per-device notices, as for messages; see
 *                                     keyexchange/repository.ts)
 * deviceLinkRequests/{requestId}     userId, requesterDeviceId, requesterDeviceName, ephemeralPublicKey,
 *                                     status (pending | approved | rejected), createdAt, expiresAt (TTL;
 *                                     10 minutes), answeredAt, answeredBy, approval (the approver's
 *                                     ephemeral key, encrypted payload, iv, authTag, signature; null once
 *                                     the new device has it or the request expired), answerOwed: a new
 *                                     device asking to be linked (devices/link-request.ts)
 * presence/{userId}                   instances.{instanceId}: true, lastSeen (see relay/presence.ts);
 *                                     read by every send transaction to route the message
 * relayInstances/{instanceId}         heartbeatAt, staleAfterMs, expiresAt (TTL): live relay instances
 *   relayEvents/{eventId}             userId, type, payload, createdAt (server time), expiresAt (TTL):
 *                                     the instance's feed (relay/events.ts), one listener each;
 *                                     `message_received` events carry the record and the message's id,
 *                                     and an audience (the devices it is for) where one is named
 * rateLimits/{sha256(bucket key)}     tokens, updatedAtMs, expiresAt (TTL): token buckets shared by
 *                                     every instance
 * files/{fileId}                      uploaderId, receiverId, filename (sanitized, display only), size,
 *                                     iv, authTag, signature, storagePath (blob key "files/{fileId}"),
 *                                     uploadedAt, expiresAt (no TTL, see below), deleteAfterDownload:
 *                                     an encrypted file's metadata; the body is in the BlobStore
 *                                     (files/blob-store.ts)
 * fileTombstones/{fileId}             uploaderId, receiverId, reason (downloaded | expired), removalId,
 *                                     storagePath, size, deletedAt, expiresAt (TTL): what is left of a
 *                                     file deleted after its download or at its expiry, so its two
 *                                     parties get 410 FILE_GONE (files/lifecycle.ts); written in the
 *                                     transaction that deletes the record
 * fileUsage/{userId}                  bytes, files: the live files the user uploaded, counted against
 *                                     the quota; changed only in the transactions that create and
 *                                     delete files records
 * transparencyQueue/{bindingId}      userId, leaf (the binding's exact JSON), queuedAt: a binding
 *                                     waiting for the sequencer; written in the transaction that
 *                                     registers the account or changes its key, deleted by the merge
 * transparencyLeaves/{leafIndex}      leafIndex, userId, leaf, bindingId: the key-transparency log's
 *                                     leaves (transparency/repository.ts)
 * transparencyUsers/{userId}          leafIndices: where a user's leaves are; queued: how many of the
 *                                     user's bindings wait (a proof reads by id only, no query)
 * transparencyNodes/L{level}-{index}  hash (base64): a complete perfect subtree, immutable; every proof
 *                                     of any tree size reads O(log n) of them
 * transparencyHeads/{treeSize}        treeSize, rootHash, timestamp, signature: every signed head
 *                                     ever published
 * transparencyLog/head                the latest signed head; transparencyLog/lease: holder, expiresAt
 *                                     (the sequencer's lease, one merger at a time)
 * keyChangeNotices/{recipientId__userId}  recipientId, userId, publicKey, version, changedAt: a
 *                                     `key_changed` notice the recipient has not acknowledged yet (the
 *                                     newest key of that user; deleted on acknowledgement)
 *
 * Fields named expiresAt hold a Firestore Timestamp. Those marked (TTL) carry a TTL policy in
 * production (TTL_FIELDS below, firestore.indexes.json, docs/DEPLOY.md), so expired records disappear
 * on their own. Two do not:
 * - files.expiresAt: a file's record, its usage and its blob must go together; files/cleanup.ts (the
 *   scheduled cleanupFiles) removes all three, finding them through this field's index.
 * - keyExchanges.expiresAt: an exchange past it is still answered, as "expired".
 *
 * Indexes (firestore.indexes.json): the composite ones the queries need, and Firestore's automatic
 * single-field ones except on fields no query reads alone: large opaque values (ciphertext, keys,
 * signatures, event payloads, transparency leaves and hashes) and times written in increasing order (an index on those would cap a
 * collection at about 500 writes/s).
 */
export const COLLECTIONS = {
  users: "users",
  contacts: "contacts",
  blocked: "blocked",
  userEmails: "userEmails",
  usernames: "usernames",
  sessions: "sessions",
  rateLimits: "rateLimits",
  messages: "messages",
  messageExpiries: "messageExpiries",
  pairCounters: "pairCounters",
  nonces: "nonces",
  relayEvents: "relayEvents",
  keyExchanges: "keyExchanges",
  deviceLinkRequests: "deviceLinkRequests",
  presence: "presence",
  relayInstances: "relayInstances",
  files: "files",
  fileUsage: "fileUsage",
  fileTombstones: "fileTombstones",
  transparencyQueue: "transparencyQueue",
  transparencyLeaves: "transparencyLeaves",
  transparencyNodes: "transparencyNodes",
  transparencyHeads: "transparencyHeads",
  transparencyUsers: "transparencyUsers",
  transparencyLog: "transparencyLog",
  keyChangeNotices: "keyChangeNotices",
} as const;

/** The TTL policies production needs: Firestore deletes a document some time after its field's time. */
export const TTL_FIELDS: ReadonlyArray<{ collectionGroup: (typeof COLLECTIONS)[keyof typeof COLLECTIONS]; field: "expiresAt" }> = [
  { collectionGroup: COLLECTIONS.sessions, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.rateLimits, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.messages, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.nonces, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.relayEvents, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.relayInstances, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.fileTombstones, field: "expiresAt" },
  { collectionGroup: COLLECTIONS.deviceLinkRequests, field: "expiresAt" },
];

/** The gRPC status codes Firestore errors carry in `code`, by name (the ones this backend reacts to). */
export const FIRESTORE_CODES = {
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNAVAILABLE: 14,
} as const;

/** The gRPC status code of a Firestore error; undefined for anything else. */
export function firestoreCodeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Calls the Firestore client's per-call deadline covers; its streams (Listen, Write) keep their own. */
const DEADLINED_METHODS = [
  "GetDocument",
  "ListDocuments",
  "UpdateDocument",
  "DeleteDocument",
  "BatchGetDocuments",
  "BeginTransaction",
  "Commit",
  "Rollback",
  "RunQuery",
  "RunAggregationQuery",
  "PartitionQuery",
  "ListCollectionIds",
  "BatchWrite",
  "CreateDocument",
] as const;
const configured = new WeakSet<Firestore>();

/**
 * Gives every Firestore call a deadline (`FIRESTORE_DEADLINE_SECONDS`): each call, with the SDK's own
 * retries, gives up after `deadlineMs` (the SDK's defaults are 60 s to 10 minutes), so a database that
 * is down or stuck fails requests with 503 instead of hanging them (shared/http.ts). Call once per
 * client, before its first use; the gax client configuration is how the SDK takes it. `more` are other
 * settings to apply with it (the SDK takes settings once): telemetry's tracer provider.
 */
export function applyFirestoreDeadline(db: Firestore, deadlineMs: number, more: Settings = {}): Firestore {
  if (configured.has(db)) return db;
  configured.add(db);
  const methods = Object.fromEntries(DEADLINED_METHODS.map((name) => [name, { timeout_millis: deadlineMs }]));
  db.settings({
    ...more,
    clientConfig: {
      interfaces: {
        "google.firestore.v1.Firestore": {
          retry_params: {
            default: {
              initial_retry_delay_millis: 100,
              retry_delay_multiplier: 1.3,
              max_retry_delay_millis: 1000,
              initial_rpc_timeout_millis: deadlineMs,
              rpc_timeout_multiplier: 1,
              max_rpc_timeout_millis: deadlineMs,
              total_timeout_millis: deadlineMs,
            },
          },
          methods,
        },
      },
    },
  });
  return db;
}
