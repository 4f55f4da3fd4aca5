import type { Timestamp } from "firebase-admin/firestore";
import type { z } from "zod";
import type { messageRecordSchema } from "./schema";

/**
 * A message as stored and as every client sees it (its schema, messageRecordSchema, is in schema.ts). The
 * ciphertext fields and clientTimestamp are kept exactly as the sender sent them; `timestamp` is server time.
 */
export type MessageRecord = z.output<typeof messageRecordSchema>;

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
  /** Set when the receiver acknowledges the message (realtime relay). */
  deliveredAt: Timestamp | null;
  /** Written with deliveredAt: which acknowledgement came first (see MessageRepository.markDelivered). */
  acknowledgementId?: string;
}

export function pairIdOf(senderId: string, receiverId: string): string {
  return `${senderId}__${receiverId}`;
}

export function toMessageRecord(id: string, stored: StoredMessage): MessageRecord {
  return {
    id,
    messageId: id,
    senderId: stored.senderId,
    receiverId: stored.receiverId,
    encryptedContent: stored.encryptedContent,
    iv: stored.iv,
    authTag: stored.authTag,
    nonce: stored.nonce,
    signature: stored.signature,
    messageType: stored.messageType,
    sequenceNumber: stored.sequenceNumber,
    timestamp: stored.timestamp.toDate().toISOString(),
    clientTimestamp: stored.clientTimestamp,
  };
}
