import { expiresInSecondsOf } from "./expiry";
import type { MessageDraft, StoredMessage } from "./record";

/**
 * Whether a send that reuses a nonce is its sender's retry of the message stored under that nonce:
 * every field the sender controls is equal (the client's `timestamp` byte for byte, `sequenceNumber`
 * only when the retry names one; `expiresInSeconds` too, absent on both or equal). Anything else reusing a nonce is a replay.
 */
export function isRetryOf(draft: MessageDraft, stored: StoredMessage): boolean {
  const { sent } = draft;
  return (
    draft.senderId === stored.senderId &&
    sent.receiverId === stored.receiverId &&
    sent.encryptedContent === stored.encryptedContent &&
    sent.iv === stored.iv &&
    sent.authTag === stored.authTag &&
    sent.signature === stored.signature &&
    sent.messageType === stored.messageType &&
    sent.timestamp === stored.clientTimestamp &&
    (sent.sequenceNumber === undefined || sent.sequenceNumber === stored.sequenceNumber) &&
    sent.expiresInSeconds === expiresInSecondsOf(stored)
  );
}
