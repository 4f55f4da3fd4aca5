import type { Timestamp } from "firebase-admin/firestore";
import type { z } from "zod";
import type { messageRecordSchema, SendMessageInput } from "./schema";

/**
 * A message as stored and as every client sees it (its schema, messageRecordSchema, is in schema.ts). The
 * ciphertext fields and clientTimestamp are kept exactly as the sender sent them; `timestamp` is server time.
 */
export type MessageRecord = z.output<typeof messageRecordSchema>;

/**
 * A send on its way to storage: the sender's input as validated, untouched, with who sent it and the
 * id the message will have. The id is minted before the transaction, so a retried attempt can
 * recognise its own earlier commit.
 */
export interface MessageDraft {
  messageId: string;
  senderId: string;
  sent: SendMessageInput;
}

/** The Firestore document: the record's fields plus what queries and delivery need. */
export interface StoredMessage {
  senderId: string;
  receiverId: string;
  /** Both participants, sorted and joined: every message of one conversation shares it. */
  conversationId: string;
  encryptedContent: string;
  iv: string;
  authTag: string;
  nonce: string;
  signature: string;
  messageType: string;
  sequenceNumber: number;
  timestamp: Timestamp;
  clientTimestamp: string;
  /**
   * Only on a disappearing message: timestamp + expiresInSeconds. The TTL policy on this field deletes
   * the document (some time after); reads filter by it exactly (expiry.ts).
   */
  expiresAt?: Timestamp;
  /** Set when the first of the receiver's devices acknowledges the message (realtime relay). */
  deliveredAt: Timestamp | null;
  /** Written with deliveredAt: which acknowledgement came first (see MessageRepository.markDelivered). */
  acknowledgementId?: string;
  /**
   * The receiver's devices that have not acknowledged it yet: the receiver's device list when it was
   * stored (or UNCLAIMED, shared/device-delivery.ts), each device taking itself off with its
   * acknowledgement. A device's backlog is the messages that list it. Never shown to clients
   * (presenters.ts). Absent on messages stored before per-device delivery: those are in history only.
   */
  pendingDevices?: string[];
}

export function pairIdOf(senderId: string, receiverId: string): string {
  return `${senderId}__${receiverId}`;
}
