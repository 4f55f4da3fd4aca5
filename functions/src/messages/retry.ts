import type { StoredMessage } from "./record";

/** What the sender controls in a send, as the repository receives it (see MessageDraft). */
export interface SentFields {
  senderId: string;
  receiverId: string;
  encryptedContent: string;
  iv: string;
  authTag: string;
  signature: string;
  messageType: string;
  clientTimestamp: string;
  requestedSequence?: number;
}

/**
 * Whether a send that reuses a nonce is its sender's retry of the message stored under that nonce:
 * every field the sender controls is equal (the client's `timestamp` byte for byte, `sequenceNumber`
 * only when the retry names one). Anything else reusing a nonce is a replay.
 */
export function isRetryOf(sent: SentFields, stored: StoredMessage): boolean {
  return (
    sent.senderId === stored.senderId &&
    sent.receiverId === stored.receiverId &&
    sent.encryptedContent === stored.encryptedContent &&
    sent.iv === stored.iv &&
    sent.authTag === stored.authTag &&
    sent.signature === stored.signature &&
    sent.messageType === stored.messageType &&
    sent.clientTimestamp === stored.clientTimestamp &&
    (sent.requestedSequence === undefined || sent.requestedSequence === stored.sequenceNumber)
  );
}
