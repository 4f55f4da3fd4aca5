import type { MessageRecord, StoredMessage } from "./record";

/** A stored message as every client sees it: in the send answer, in history, in socket events. */
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
    // Records of messages that never expire have no expiresAt field at all.
    ...(stored.expiresAt ? { expiresAt: stored.expiresAt.toDate().toISOString() } : {}),
  };
}
